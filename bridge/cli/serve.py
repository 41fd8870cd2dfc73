"""`zoho-bridge serve` and `zoho-bridge keygen`."""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

import click
import uvicorn

from bridge.cli.common import ENV_HELP, settings_of
from bridge.errors import BridgeError
from bridge.process import tune_gc
from bridge.secretbox import generate_key
from bridge.services import schema
from bridge.settings import Settings
from bridge.web import server
from bridge.web.app import create_app

# Descriptors kept back from the connection limit: the database pool, the SQLite files,
# broker and Zoho connections, logs.
RESERVED_FILES = 64
MAX_CONNECTIONS = 10_000


@click.command(epilog=ENV_HELP)
@click.option("--host", help="Address to listen on (BRIDGE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (BRIDGE_PORT, default 8000).")
@click.option("--no-migrate", is_flag=True, help="Do not apply database migrations first.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (PostgreSQL only; each runs its own writer, relay and jobs).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, no_migrate: bool, workers: int
) -> None:
    """Run the bridge: webhooks, admin API and metrics, on SQLite unless told otherwise.

    Migrations are applied first, so a fresh SQLite file (./bridge.db) just works.
    """
    settings = settings_of(ctx)
    if workers > 1 and settings.is_sqlite:
        # Zoho token and budget locks on SQLite hold within one process only.
        raise click.UsageError("--workers above 1 needs PostgreSQL (BRIDGE_DATABASE_URL)")
    host = host or settings.host
    port = port or settings.port
    if not no_migrate:
        try:
            asyncio.run(schema.upgrade(settings.database_url))
        except BridgeError as exc:
            raise click.ClickException(exc.message) from None
        except Exception as exc:
            raise click.ClickException(
                f"cannot migrate the database ({type(exc).__name__}); "
                "check BRIDGE_DATABASE_URL and that the database is reachable"
            ) from None
    problem = asyncio.run(schema.secret_problem(settings))
    if problem is not None:
        raise click.ClickException(
            f"{problem}. Stored connection secrets and channel tokens cannot be read; "
            "set BRIDGE_SECRET_KEY to the key they were stored with."
        )
    if settings.admin_token is None:
        click.echo("note: BRIDGE_ADMIN_TOKEN is not set, so the admin API is disabled", err=True)
    click.echo(f"zoho-bridge listening on http://{host}:{port}", err=True)
    if workers > 1:
        # Worker processes build the app from the environment: pass on the CLI's override.
        os.environ["BRIDGE_DATABASE_URL"] = settings.database_url
        app: Any = "bridge.web.asgi:app_from_environment"
    else:
        app = create_app(settings)
        tune_gc()
    server.configure(settings)  # worker processes: in their app factory (web/asgi.py)
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=True,
        lifespan="on",
        **server_limits(settings),
    )


def server_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for slow or greedy clients (README, Configuration):

    - `http`: uvicorn's httptools protocol plus a deadline and a size bound on each
      request's head (web/server.py). uvicorn's own head bound,
      `h11_max_incomplete_event_size`, applies only to its slower h11 protocol, and it
      has no head deadline at all;
    - `timeout_keep_alive`: an idle connection is closed this long after a response;
    - `limit_concurrency`: past this many connections or running requests, new requests
      are answered 503 at once instead of running out of file descriptors (accept() then
      fails, and the database and brokers cannot connect either);
    - `ws`: none; the bridge serves no WebSocket, and an upgrade would hand the connection
      to a protocol without these limits.
    """
    return {
        "http": server.BoundedHttpToolsProtocol,
        "ws": "none",
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections or default_max_connections(),
    }


def default_max_connections() -> int:
    """The soft open-file limit, less what the bridge needs besides connections."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - RESERVED_FILES))


@click.command()
def keygen() -> None:
    """Print a new key for BRIDGE_SECRET_KEY (encrypts stored secrets)."""
    click.echo(generate_key())
