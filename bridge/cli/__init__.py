"""The `zoho-bridge` command line."""

from __future__ import annotations

import os

import click
from pydantic import ValidationError

from bridge import __version__
from bridge.cli.common import ENV_HELP, CliContext
from bridge.logs import configure_logging
from bridge.settings import Settings, describe_errors, unknown_variables


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=ENV_HELP,
)
@click.option(
    "--database-url",
    metavar="URL",
    help="Overrides BRIDGE_DATABASE_URL (default: sqlite+aiosqlite:///./bridge.db).",
)
@click.version_option(__version__, prog_name="zoho-bridge")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """zoho-bridge: receive, verify, store and hand on Zoho Books and Zoho CRM webhooks.

    Settings come from BRIDGE_* environment variables; see `zoho-bridge serve --help`
    and the README's configuration table.
    """
    for name, close in unknown_variables(os.environ):
        hint = f"; did you mean {close}?" if close else ""
        click.echo(f"warning: {name} is not a zoho-bridge setting{hint}", err=True)
    try:
        settings = Settings.from_environ(os.environ, database_url=database_url)
    except ValidationError as exc:
        raise click.ClickException(f"invalid setting: {describe_errors(exc)}") from None
    except ValueError as exc:  # pydantic-settings' own parsing (e.g. a list that is not JSON)
        raise click.ClickException(f"invalid setting: {exc}") from None
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = CliContext(settings)


def _register() -> None:
    from bridge.cli import (
        channels,
        connections,
        db,
        delivery,
        events,
        managed_channels,
        reconcile,
        relay,
        requests,
        samples,
        sandbox,
        serve,
        sources,
        subscriptions,
        tail,
    )

    main.add_command(serve.serve)
    main.add_command(serve.keygen)
    main.add_command(relay.relay)
    main.add_command(db.db)
    main.add_command(sources.sources)
    main.add_command(channels.channels)
    del managed_channels  # its commands join the `channels` group on import
    main.add_command(connections.connections)
    main.add_command(reconcile.reconcile)
    main.add_command(sandbox.sandbox)
    main.add_command(events.events)
    main.add_command(samples.send_sample)
    main.add_command(subscriptions.subscriptions)
    main.add_command(delivery.outbox)
    main.add_command(delivery.status)
    main.add_command(delivery.replay)
    main.add_command(delivery.purge)
    main.add_command(requests.requests)
    events.events.add_command(delivery.replay_event)
    events.events.add_command(tail.tail)


_register()
