"""`zoho-bridge channels create|renew|rotate|disable|gaps`: channels the bridge manages."""

from __future__ import annotations

from typing import Any

import click

from bridge.cli.channels import channels
from bridge.cli.common import (
    print_json,
    print_table,
    remote_of,
    run_async,
    runtime_for,
    settings_of,
)
from bridge.cli.remote import AdminApi, ApiError
from bridge.errors import NotFound
from bridge.services.managed_channels import ChannelRequest


@channels.command("create")
@click.option("--connection", required=True, help="The Zoho connection to enable it with.")
@click.option("--events", required=True, help="Comma-separated, e.g. Leads.all,Deals.edit.")
@click.option("--source", help="Event source name (default: the connection's name).")
@click.option(
    "--notify-on-related-action/--no-notify-on-related-action",
    default=None,
    help="Also notify on actions on related records (Zoho's default: yes).",
)
@click.option(
    "--return-affected-field-values",
    is_flag=True,
    default=None,
    help="Ask Zoho to send the changed values in each callback.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def create(
    ctx: click.Context, connection: str, events: str, source: str | None,
    notify_on_related_action: bool | None, return_affected_field_values: bool | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Enable a channel at Zoho whose callbacks come to BRIDGE_PUBLIC_URL/hooks/crm; the
    running bridge renews it from then on."""
    request = ChannelRequest(
        connection, events.split(","), source, notify_on_related_action,
        return_affected_field_values,
    )  # fmt: skip
    async with runtime_for(settings_of(ctx)) as rt:
        created = await rt.managed_channels.create(request)
        view = await rt.managed_channels.view(created.channel_id)
    if as_json:
        print_json(view)
        return
    click.echo(f"channel {created.channel_id} enabled until {view['expires_at']}")


@channels.command("renew")
@click.argument("channel_id")
@click.pass_context
@run_async
async def renew(ctx: click.Context, channel_id: str) -> None:
    """Renew managed channel CHANNEL_ID now (through the bridge at BRIDGE_URL when set).
    Imported channels are renewed by whoever created them, not by the bridge."""
    api = remote_of(ctx)
    if api is not None:
        try:
            view = api.post(f"/admin/channels/{channel_id}/renew")
        except ApiError as exc:
            if exc.status == 404 and _imported_remote(api, channel_id):
                raise click.ClickException(imported_note(channel_id)) from None
            raise
        click.echo(f"channel {channel_id} renewed until {view['expires_at']}")
        return
    async with runtime_for(settings_of(ctx)) as rt:
        try:
            channel = await rt.managed_channels.renew_now(channel_id)
        except NotFound:
            try:
                known = await rt.channels.view(channel_id)
            except NotFound:
                known = None
            if known is not None and _imported(known):
                raise click.ClickException(imported_note(channel_id)) from None
            raise
    click.echo(f"channel {channel_id} renewed until {channel.expires_at}")


def _imported(view: dict[str, Any]) -> bool:
    return not view.get("managed")


def _imported_remote(api: AdminApi, channel_id: str) -> bool:
    try:
        return _imported(api.get(f"/admin/channels/{channel_id}"))
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise


def imported_note(channel_id: str) -> str:
    return (
        f"channel {channel_id} is imported: the bridge only verifies its callbacks, and it is "
        "renewed by whoever created it (their own call to Zoho's /crm/v8/actions/watch). "
        "To have the bridge renew a channel, create it with `zoho-bridge channels create`."
    )


@channels.command("rotate")
@click.argument("channel_id")
@click.pass_context
@run_async
async def rotate(ctx: click.Context, channel_id: str) -> None:
    """Give CHANNEL_ID a new token now; the old one is accepted for the grace period
    (BRIDGE_CHANNEL_TOKEN_GRACE_HOURS)."""
    async with runtime_for(settings_of(ctx)) as rt:
        await rt.managed_channels.renew_now(channel_id, rotate=True)
    click.echo(f"channel {channel_id} has a new token")


@channels.command("disable")
@click.argument("channel_id")
@click.pass_context
@run_async
async def disable(ctx: click.Context, channel_id: str) -> None:
    """Delete CHANNEL_ID at Zoho and stop accepting its callbacks."""
    async with runtime_for(settings_of(ctx)) as rt:
        note = await rt.managed_channels.disable(channel_id)
    click.echo(f"channel {channel_id} disabled ({note})")


@channels.command("gaps")
@click.argument("channel_id", required=False)
@click.pass_context
@run_async
async def gaps(ctx: click.Context, channel_id: str | None) -> None:
    """Spans in which managed channels were not live at Zoho (to reconcile)."""
    async with runtime_for(settings_of(ctx)) as rt:
        found = await rt.managed_channels.gaps(channel_id)
    print_table(
        ["channel id", "from", "to", "reason", "events"],
        [[g.channel_id, g.gap_from, g.gap_to, g.reason, ",".join(g.events)] for g in found],
    )
