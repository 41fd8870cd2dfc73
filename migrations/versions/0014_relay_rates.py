"""relay_rates: the publish rate each running relay reports per push sink

`/admin/status` showed a sink's publish rate only when the relay ran inside the process
answering (null for a `zoho-bridge relay` process, or another replica's relay). Every
relay now writes its rates here every few seconds and deletes them when it stops; status
sums the recent ones.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bridge.store.types

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('relay_rates',
    sa.Column('relay', sa.String(length=64), nullable=False),
    sa.Column('sink', sa.String(length=32), nullable=False),
    sa.Column('per_second', sa.Float(), nullable=False),
    sa.Column('reported_at', bridge.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('relay', 'sink', name=op.f('pk_relay_rates'))
    )


def downgrade() -> None:
    op.drop_table('relay_rates')
