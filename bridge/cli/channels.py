"""`zoho-bridge channels import|list|add-token`: CRM notification channels."""

from __future__ import annotations

from datetime import timedelta

import click

from bridge.cli.common import print_json, print_table, run_async, runtime_for, settings_of
from bridge.services import admin as actions
from bridge.store import channels as channel_store
from bridge.web.views import channel_view


@click.group()
def channels() -> None:
    """Zoho CRM notification channels whose callbacks arrive at /hooks/crm."""


@channels.command("import")
@click.argument("channel_id")
@click.option("--token", required=True, help="The channel's token as given to Zoho (<= 50).")
@click.option("--events", default="", help="Comma-separated, e.g. Leads.all,Deals.edit.")
@click.option("--source", default="crm", show_default=True, help="Event source name.")
@click.pass_context
@run_async
async def import_(
    ctx: click.Context, channel_id: str, token: str, events: str, source: str
) -> None:
    """Import channel CHANNEL_ID created outside the bridge: its callbacks are verified and
    stored, but the bridge does not renew it."""
    async with runtime_for(settings_of(ctx)) as rt:
        info = await actions.import_channel(
            rt.engine,
            channel_id=channel_id,
            token=token,
            events=[e.strip() for e in events.split(",") if e.strip()],
            source=source,
            now=rt.clock(),
        )
    click.echo(f"channel {info.channel_id} imported (source {info.source})")


@channels.command("add-token")
@click.argument("channel_id")
@click.option("--token", required=True, help="The new token.")
@click.option(
    "--retire-others-after",
    type=int,
    metavar="SECONDS",
    help="Stop accepting the current tokens after this many seconds.",
)
@click.pass_context
@run_async
async def add_token(
    ctx: click.Context, channel_id: str, token: str, retire_others_after: int | None
) -> None:
    """Accept another token for CHANNEL_ID (rotation)."""
    async with runtime_for(settings_of(ctx)) as rt:
        await actions.add_channel_token(
            rt.engine,
            channel_id=channel_id,
            token=token,
            retire_others_after=timedelta(seconds=retire_others_after)
            if retire_others_after is not None
            else None,
            now=rt.clock(),
        )
    click.echo(f"channel {channel_id} now accepts the new token")


@channels.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(ctx: click.Context, as_json: bool) -> None:
    """List CRM channels."""
    async with runtime_for(settings_of(ctx)) as rt:
        items = [channel_view(c) for c in await channel_store.list_channels(rt.engine)]
    if as_json:
        print_json(items)
        return
    print_table(
        ["channel id", "source", "events", "managed", "tokens", "status", "expires"],
        [
            [
                c["channel_id"],
                c["source"],
                ",".join(c["events"]),
                c["managed"],
                len(c["tokens"]),
                c["status"],
                c["expires_at"],
            ]
            for c in items
        ],
    )
