"""sink health: when a relay found a push sink unreachable, and why

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bridge.store.types

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sink_states', schema=None) as batch_op:
        batch_op.add_column(sa.Column('down_since', bridge.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('down_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('checked_at', bridge.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('checked_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sink_states', schema=None) as batch_op:
        batch_op.drop_column('checked_by')
        batch_op.drop_column('checked_at')
        batch_op.drop_column('down_reason')
        batch_op.drop_column('down_since')
