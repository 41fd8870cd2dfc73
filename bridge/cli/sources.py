"""`zoho-bridge sources add|list|set`: Books webhook sources."""

from __future__ import annotations

import click

from bridge.cli.common import print_json, print_table, run_async, runtime_for, settings_of
from bridge.services.views import source_view


def _base_url(ctx: click.Context) -> str:
    """Where Zoho sends webhooks: BRIDGE_PUBLIC_URL, else the running bridge (BRIDGE_URL),
    else this shell's BRIDGE_HOST and BRIDGE_PORT (a `serve` elsewhere on another port
    would otherwise be printed as :8000)."""
    settings = settings_of(ctx)
    base = settings.public_url or settings.url or f"http://{settings.host}:{settings.port}"
    return base.rstrip("/")


@click.group()
def sources() -> None:
    """Books sources: the inbound URLs /hooks/books/NAME for Zoho Books workflow webhooks."""


@sources.command("add")
@click.argument("name")
@click.option("--token", "tokens", multiple=True, help="Accepted token (repeat to rotate).")
@click.option("--secret", "secrets", multiple=True, help="HMAC secret for signatures.")
@click.option(
    "--signature-mode",
    type=click.Choice(["enforce", "report"]),
    default="enforce",
    show_default=True,
    help="'report' records signature results without refusing (needs a token too).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def add(
    ctx: click.Context,
    name: str,
    tokens: tuple[str, ...],
    secrets: tuple[str, ...],
    signature_mode: str,
    as_json: bool,
) -> None:
    """Create source NAME. With no --token and no --secret, a token is generated and shown
    once: put the printed URL (with its ?token=) into the Zoho Books webhook."""
    async with runtime_for(settings_of(ctx)) as rt:
        created = await rt.sources.add(
            name, tokens=list(tokens) or None, secrets=list(secrets), signature_mode=signature_mode
        )
    view = source_view(created.info, _base_url(ctx))
    if created.generated_token:
        view["token"] = created.generated_token
        view["hook_url_with_token"] = f"{view['hook_url']}?token={created.generated_token}"
    if as_json:
        print_json(view)
        return
    click.echo(f"source {name} created")
    click.echo(f"webhook URL: {view.get('hook_url_with_token', view['hook_url'])}")
    if created.generated_token:
        click.echo("the token is shown only this once; only its digest is stored")


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(ctx: click.Context, as_json: bool) -> None:
    """List Books sources."""
    async with runtime_for(settings_of(ctx)) as rt:
        items = [source_view(s, _base_url(ctx)) for s in await rt.sources.all()]
    if as_json:
        print_json(items)
        return
    print_table(
        ["name", "hook URL", "tokens", "secrets", "signature", "enabled"],
        [
            [s["name"], s["hook_url"], s["tokens"], s["secrets"], s["signature_mode"], s["enabled"]]
            for s in items
        ],
    )


@sources.command("set")
@click.argument("name")
@click.option("--token", "tokens", multiple=True, help="Replace the tokens (repeat for several).")
@click.option("--secret", "secrets", multiple=True, help="Replace the secrets.")
@click.option("--signature-mode", type=click.Choice(["enforce", "report"]))
@click.option("--enable/--disable", default=None, help="Accept or refuse deliveries.")
@click.option(
    "--connection",
    metavar="NAME",
    help="Link to the Zoho connection of the same Books organization ('' unlinks): its "
    "reconciliation and this source's webhooks are matched.",
)
@click.pass_context
@run_async
async def set_(
    ctx: click.Context,
    name: str,
    tokens: tuple[str, ...],
    secrets: tuple[str, ...],
    signature_mode: str | None,
    enable: bool | None,
    connection: str | None,
) -> None:
    """Change source NAME: rotate tokens or secrets (give old and new), switch it on or
    off, link it to a connection."""
    async with runtime_for(settings_of(ctx)) as rt:
        await rt.sources.change(
            name,
            tokens=list(tokens) or None,
            secrets=list(secrets) or None,
            signature_mode=signature_mode,
            enabled=enable,
            connection=connection,
        )
    click.echo(f"source {name} changed (running bridges see it within the lookup cache time)")
