"""read paths: event filter indexes ending in seq; undelivered outbox rows for status

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-06 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_FILTERS = ('record_id', 'source', 'module')
NOT_WEBHOOK = "origin != 'webhook'"
UNDELIVERED = "status != 'delivered'"


def upgrade() -> None:
    for column in EVENT_FILTERS:
        op.create_index(f'ix_events_{column}_seq', 'events', [column, 'seq'], unique=False)
    op.create_index(
        'ix_events_origin_seq', 'events', ['origin', 'seq'], unique=False,
        sqlite_where=sa.text(NOT_WEBHOOK), postgresql_where=sa.text(NOT_WEBHOOK),
    )
    op.create_index(
        'ix_deliveries_sink_status_replay_created_at', 'deliveries',
        ['sink', 'status', 'replay', 'created_at'], unique=False,
        sqlite_where=sa.text(UNDELIVERED), postgresql_where=sa.text(UNDELIVERED),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index('ix_deliveries_sink_status_replay_created_at', table_name='deliveries')
    op.drop_index('ix_events_origin_seq', table_name='events')
    for column in reversed(EVENT_FILTERS):
        op.drop_index(f'ix_events_{column}_seq', table_name='events')
