"""deliveries.publish_ms: how long the publish that delivered the row took

A delivery's last, successful try (by a sink that publishes in batches: every push sink)
is recorded on its outbox row (delivered_at, lease_owner, publish_ms) instead of as a row
of `delivery_attempts`; the history reads it back as its final attempt. That insert was
the largest part of settling a batch on PostgreSQL (500 rows: 18 ms with it, 7.5 ms
without). Failed and unavailable tries (with the error, the subscriber's status and
answer) are still rows of `delivery_attempts`.

Rows delivered before this revision keep NULL and their attempt rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (a nullable column: no rewrite of the rows).
    op.add_column('deliveries', sa.Column('publish_ms', sa.Float(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both (SQLite since 3.35): a batch copy of the table
    # would lose the lane index, an expression SQLite's reflection does not give back.
    op.drop_column('deliveries', 'publish_ms')
