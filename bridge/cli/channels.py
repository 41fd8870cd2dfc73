"""`zoho-bridge channels import|list|add-token`: CRM notification channels of every kind
(the commands for managed channels are in `cli.managed_channels`)."""

from __future__ import annotations

from datetime import timedelta

import click

from bridge.cli.common import print_json, print_table, run_async, runtime_for, settings_of


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
        info = await rt.channels.import_(
            channel_id,
            token=token,
            events=[e.strip() for e in events.split(",") if e.strip()],
            source=source,
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
        await rt.channels.add_token(
            channel_id,
            token,
            retire_others_after=timedelta(seconds=retire_others_after)
            if retire_others_after is not None
            else None,
        )
    click.echo(f"channel {channel_id} now accepts the new token")


@channels.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(ctx: click.Context, as_json: bool) -> None:
    """List CRM channels: managed ones with state, expiry countdown, last renewal, error."""
    async with runtime_for(settings_of(ctx)) as rt:
        items = await rt.channels.views()
    if as_json:
        print_json(items)
        return
    rows = []
    for c in items:
        r = c["renewal"] or {}
        rows.append(
            [
                c["channel_id"], r.get("connection") or "(imported)", ",".join(c["events"]),
                r.get("state", c["status"]), c["expires_at"],
                _countdown(r.get("expires_in_seconds")), r.get("last_renewed_at"),
                r.get("last_error"),
            ]
        )  # fmt: skip
    print_table(
        ["channel id", "connection", "events", "state", "expires", "expires in",
         "last renewal", "last error"],
        rows,
    )  # fmt: skip


def _countdown(seconds: int | None) -> str:
    if seconds is None:
        return ""
    if seconds <= 0:
        return "expired"
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h {rest % 3600 // 60}m"
