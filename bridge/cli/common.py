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

from bridge.errors import BridgeError
from bridge.runtime import Runtime, open_runtime
from bridge.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

ENV_HELP = (
    "Environment: BRIDGE_DATABASE_URL, BRIDGE_ADMIN_TOKEN, BRIDGE_SECRET_KEY, "
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


@asynccontextmanager
async def runtime_for(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(settings, background=False)
    try:
        yield runtime
    finally:
        await runtime.close()


def run_async(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command body; BridgeErrors become a clean message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))
        except BridgeError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
