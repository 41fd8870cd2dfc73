"""statistics of lower(status) on the outbox: the status overview's plan on PostgreSQL

Migration 0010 gave the status overview's partial index the predicate
`lower(status) != 'delivered'`, so that no other statement can be planned through it.
PostgreSQL keeps no statistics of an expression unless asked, and took the condition to
hold for nearly every row: `/admin/status` scanned the whole outbox (116 ms at 1M rows,
0.7 ms through the index). Statistics on the expression let the planner see how few rows
are undelivered. SQLite plans by the index's condition alone: nothing to do there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 07:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 'st_deliveries_undelivered'


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f"CREATE STATISTICS {NAME} ON (lower(status::text)) FROM deliveries")
    op.execute("ANALYZE deliveries")  # the plan is right from the first request on


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f"DROP STATISTICS IF EXISTS {NAME}")
