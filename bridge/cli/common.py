"""What every CLI command shares: settings, a runtime for one command, output helpers."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.table import Table

from bridge.cli import database
from bridge.cli.remote import AdminApi, admin_api
from bridge.errors import BridgeError, StoreUnavailable
from bridge.runtime import Runtime, open_runtime
from bridge.services import schema
from bridge.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

ENV_HELP = (
    "Environment: BRIDGE_DATABASE_URL, BRIDGE_URL (a running bridge, for status, replay, "
    "outbox, requests, channels renew), BRIDGE_ADMIN_TOKEN, BRIDGE_SECRET_KEY, "
    "BRIDGE_PUBLIC_URL, BRIDGE_HOST, BRIDGE_PORT, BRIDGE_MAX_BODY_BYTES, BRIDGE_LOG_LEVEL, "
    "BRIDGE_LOG_FORMAT, BRIDGE_CHANNEL_* (see docs/channels.md; the README for all)."
)

# Not a terminal (a pipe, a log): wide enough that ids and times are never cut.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 220)


@dataclass
class CliContext:
    settings: Settings


def settings_of(ctx: click.Context) -> Settings:
    obj = ctx.find_object(CliContext)
    assert obj is not None
    return obj.settings


def remote_of(ctx: click.Context) -> AdminApi | None:
    """The running bridge's admin API when BRIDGE_URL is set; None to use the database."""
    return admin_api(settings_of(ctx))


async def check_database(settings: Settings) -> None:
    """Connect once, so that a database that cannot work is one line, not a traceback
    (or, for `status`, a problem in a table)."""
    missing = database.missing_directory(settings.database_url)
    if missing is not None:
        raise click.ClickException(missing)
    try:
        await schema.revisions(settings.database_url)
    except Exception as exc:
        if not (isinstance(exc, StoreUnavailable) or database.is_database_error(exc)):
            raise
        raise click.ClickException(database.describe(settings.database_url, exc)) from None


@asynccontextmanager
async def runtime_for(settings: Settings) -> AsyncIterator[Runtime]:
    await check_database(settings)
    runtime = await open_runtime(settings, background=False)
    try:
        yield runtime
    finally:
        await runtime.close()


def run_async(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command body; BridgeErrors and database errors become one clean line
    and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))
        except BridgeError as exc:
            raise click.ClickException(exc.message) from None
        except click.ClickException:
            raise
        except Exception as exc:
            if not database.is_database_error(exc):
                raise
            url = settings_of(click.get_current_context()).database_url
            raise click.ClickException(database.describe(url, exc)) from None

    return wrapper


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
