"""`zoho-bridge subscriptions add|list|remove|rewind`: pull subscriptions."""

from __future__ import annotations

import click

from bridge.cli.common import print_json, print_table, run_async, runtime_for, settings_of
from bridge.services.views import subscription_view

OPERATIONS = click.Choice(["created", "updated", "deleted", "changed"])


@click.group()
def subscriptions() -> None:
    """Pull subscriptions: consumers read events over HTTP at /v1/subscriptions/NAME."""


@subscriptions.command("add")
@click.argument("name")
@click.option("--source", help="Only events of this source.")
@click.option("--module", help="Only events of this module, e.g. Leads or invoice.")
@click.option("--operation", type=OPERATIONS, help="Only this operation.")
@click.option("--from-start", is_flag=True, help="Start at the oldest stored event, not now.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def add(
    ctx: click.Context,
    name: str,
    source: str | None,
    module: str | None,
    operation: str | None,
    from_start: bool,
    as_json: bool,
) -> None:
    """Create subscription NAME and print its token (shown once, only a digest is kept)."""
    async with runtime_for(settings_of(ctx)) as rt:
        created = await rt.subscriptions.add(
            name, source=source, module=module, operation=operation, from_start=from_start
        )
    if as_json:
        print_json(subscription_view(created.info) | {"token": created.token})
        return
    click.echo(f"subscription {name} created; starts after seq {created.info.acked_seq}")
    click.echo(f"token (shown once): {created.token}")


@subscriptions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(ctx: click.Context, as_json: bool) -> None:
    """List subscriptions with their filters and acknowledged position."""
    async with runtime_for(settings_of(ctx)) as rt:
        items = await rt.subscriptions.all()
    if as_json:
        print_json([subscription_view(s) for s in items])
        return
    print_table(
        ["name", "source", "module", "operation", "acked seq", "updated"],
        [[s.name, s.source, s.module, s.operation, s.acked_seq,
          s.updated_at.strftime("%Y-%m-%d %H:%M:%S")] for s in items],
    )  # fmt: skip


@subscriptions.command("remove")
@click.argument("name")
@click.pass_context
@run_async
async def remove(ctx: click.Context, name: str) -> None:
    """Delete subscription NAME (its token stops working at once)."""
    async with runtime_for(settings_of(ctx)) as rt:
        await rt.subscriptions.remove(name)
    click.echo(f"subscription {name} removed")


@subscriptions.command("rewind")
@click.argument("name")
@click.argument("seq", type=click.IntRange(0))
@click.pass_context
@run_async
async def rewind(ctx: click.Context, name: str, seq: int) -> None:
    """Replay for a pull subscriber: its next read starts after SEQ (0: from the start)."""
    async with runtime_for(settings_of(ctx)) as rt:
        stored = await rt.subscriptions.rewind(name, seq)
    click.echo(f"subscription {name} now reads after seq {stored}")
