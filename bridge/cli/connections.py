"""`zoho-bridge connections add|list|update|remove|check`: Zoho OAuth connections."""

from __future__ import annotations

import json

import click

from bridge.cli.common import print_json, print_table, run_async, runtime_for, settings_of
from bridge.domain.states import ConnectionStatus
from bridge.services.connections import NewConnection
from bridge.services.views import connection_view
from bridge.zoho.errors import ZohoAuthError


@click.group()
def connections() -> None:
    """Zoho OAuth connections: one per organisation and data centre."""


@connections.command("add")
@click.argument("name")
@click.option("--dc", default="com", show_default=True, help="Data centre: com, eu, in, ...")
@click.option("--client-id", required=True, help="From the Zoho API console.")
@click.option("--client-secret", required=True, help="From the Zoho API console.")
@click.option("--refresh-token", required=True, help="From the OAuth consent (see docs).")
@click.option("--organization-id", help="Zoho Books organization id (when Books is used).")
@click.option("--accounts-url", help="Override the data centre's accounts server.")
@click.option("--api-domain", help="Override the data centre's API domain.")
@click.option("--limits", "limits_json", metavar="JSON",
              help='e.g. \'{"books_per_minute": 60, "crm_concurrency": 5}\'')  # fmt: skip
@click.pass_context
@run_async
async def add(
    ctx: click.Context, name: str, dc: str, client_id: str, client_secret: str,
    refresh_token: str, organization_id: str | None, accounts_url: str | None,
    api_domain: str | None, limits_json: str | None,
) -> None:  # fmt: skip
    """Add connection NAME. Secrets are stored encrypted (BRIDGE_SECRET_KEY)."""
    try:
        limits = json.loads(limits_json) if limits_json else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--limits") from None
    async with runtime_for(settings_of(ctx)) as rt:
        new = NewConnection(
            name, dc, client_id, client_secret, refresh_token, organization_id, accounts_url,
            api_domain, limits,
        )  # fmt: skip
        await rt.connections.add(new)
    click.echo(f"connection {name} added; try `zoho-bridge connections check {name}`")


@connections.command("update")
@click.argument("name")
@click.option("--refresh-token", help="A new refresh token (after re-consent): reactivates.")
@click.option("--client-secret", help="A new client secret.")
@click.option("--status", type=click.Choice(list(ConnectionStatus)))
@click.pass_context
@run_async
async def update(
    ctx: click.Context,
    name: str,
    refresh_token: str | None,
    client_secret: str | None,
    status: str | None,
) -> None:
    """Change connection NAME; a new refresh token resumes its paused channels."""
    async with runtime_for(settings_of(ctx)) as rt:
        info = await rt.connections.change(
            name, refresh_token=refresh_token, client_secret=client_secret, status=status
        )
    click.echo(f"connection {name} is {info.status}")


@connections.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(ctx: click.Context, as_json: bool) -> None:
    """List connections (never their secrets)."""
    async with runtime_for(settings_of(ctx)) as rt:
        items = [connection_view(c) for c in await rt.connections.all()]
    if as_json:
        print_json(items)
        return
    print_table(
        ["name", "dc", "status", "books org", "api domain", "last error"],
        [
            [c["name"], c["dc"], c["status"], c["organization_id"], c["api_domain"],
             c["last_error"]]
            for c in items
        ],
    )  # fmt: skip


@connections.command("remove")
@click.argument("name")
@click.pass_context
@run_async
async def remove(ctx: click.Context, name: str) -> None:
    """Remove connection NAME (refused while it has live channels)."""
    async with runtime_for(settings_of(ctx)) as rt:
        await rt.connections.remove(name)
    click.echo(f"connection {name} removed")


@connections.command("check")
@click.argument("name")
@click.option("--no-crm", is_flag=True, help="Books only: skip the CRM /org call.")
@click.pass_context
@run_async
async def check(ctx: click.Context, name: str, no_crm: bool) -> None:
    """Make one cheap authenticated call and say which org and data centre answered."""
    async with runtime_for(settings_of(ctx)) as rt:
        try:
            report = await rt.connections.check(name, crm=not no_crm)
        except ZohoAuthError as exc:
            raise click.ClickException(
                f"Zoho refused the refresh token of {name!r}: {exc.message}. The connection "
                "is now needs_reauth and its channels are paused; make a new refresh token "
                f"and run `zoho-bridge connections update {name} --refresh-token ...`"
            ) from None
    click.echo(f"connection {name} works (data centre {report.dc})")
    if report.crm_org:
        click.echo(f"CRM org: {report.crm_org}")
    for org in report.books_organizations:
        click.echo(f"Books organization: {org}")
