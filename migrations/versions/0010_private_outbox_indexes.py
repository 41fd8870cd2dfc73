"""outbox indexes only their own statements can use: no plan through them by default

PostgreSQL with statistics taken while no outbox row was pending (a new database, or the
steady state of a relay that keeps up: every row delivered, as autovacuum's ANALYZE
mostly finds it) estimates both partial indexes of the outbox as empty. Any statement
whose condition implies an index's predicate could then be planned through it: the
claim's lane probe (`status = 'pending'` implies `status != 'delivered'`) went through
the status overview's index and filtered every pending row per candidate, so a claim of
500 among 20k pending rows took 0.9-1.7 s instead of ~20 ms, and a backlog drained the
slower the longer it grew. Migration 0009 had given the probe an expression only the
lane index holds; that was not enough, because the other index can be scanned whole.

Each partial index now has a predicate written the way only its own statements write
it: the lane index `(status || '') = 'pending'`, the status overview's
`lower(status) != 'delivered'`. No other condition implies either, whatever the
statistics say.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 04:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LANE = "(sink || ' ' || record_key)"
COUNTS = 'ix_deliveries_sink_status_replay_created_at'


def _indexes(pending: str, undelivered: str) -> None:
    op.drop_index('ix_deliveries_lane', table_name='deliveries')
    op.create_index(
        'ix_deliveries_lane', 'deliveries', [sa.text(LANE), 'id'], unique=False,
        sqlite_where=sa.text(pending), postgresql_where=sa.text(pending),
    )  # fmt: skip
    op.drop_index(COUNTS, table_name='deliveries')
    op.create_index(
        COUNTS, 'deliveries', ['sink', 'status', 'replay', 'created_at'], unique=False,
        sqlite_where=sa.text(undelivered), postgresql_where=sa.text(undelivered),
    )  # fmt: skip


def upgrade() -> None:
    _indexes("(status || '') = 'pending'", "lower(status) != 'delivered'")


def downgrade() -> None:
    _indexes("status = 'pending'", "status != 'delivered'")
