"""events.envelope_head: the envelope's text up to its seq, written with each event

The pull API's pages and the relay's messages are written by the database from each
row. Quoting and checking every field per row (six JSON quotings, the value checks, the
time cut from its text) made a page cost about twice a raw read of its rows; with the
head stored, a read writes each envelope from four values (head, seq, data).

Existing rows keep NULL and are written field by field as before; so are reconciled
events (their extra attributes follow the seq). No backfill: rewriting every stored
event would make the upgrade as long as the table, and retention replaces the old rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: no table copy (SQLite and PostgreSQL add a
    # nullable column without rewriting the rows).
    op.add_column('events', sa.Column('envelope_head', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.drop_column('envelope_head')
