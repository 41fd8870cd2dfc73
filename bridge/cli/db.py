"""`zoho-bridge db upgrade|current`."""

from __future__ import annotations

import click

from bridge.cli.common import check_database, run_async, settings_of
from bridge.services import schema


@click.group()
def db() -> None:
    """Database schema: apply migrations, or show where the database stands."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.option("--revision", "old_revision", hidden=True, help="Old spelling of REVISION.")
@click.pass_context
@run_async
async def db_upgrade(ctx: click.Context, revision: str, old_revision: str | None) -> None:
    """Apply migrations up to REVISION (head by default)."""
    revision = old_revision or revision
    settings = settings_of(ctx)
    await check_database(settings)
    await schema.upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@db.command("current")
@click.pass_context
@run_async
async def db_current(ctx: click.Context) -> None:
    """Show the database's revision and the newest one this version knows."""
    settings = settings_of(ctx)
    await check_database(settings)
    current, head = await schema.revisions(settings.database_url)
    state = "up to date" if current == head else "needs `zoho-bridge db upgrade`"
    click.echo(f"current: {current or '(empty)'}\nhead:    {head}\n{state}")
