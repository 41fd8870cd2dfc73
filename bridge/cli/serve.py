"""`zoho-bridge serve` and `zoho-bridge keygen`."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import socket
from typing import Any

import click
import uvicorn
from uvicorn.supervisors import Multiprocess

from bridge.cli import database
from bridge.cli.common import ENV_HELP, check_database, settings_of
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
BACKLOG = 2048  # uvicorn's default


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

    Migrations are applied first, so a fresh SQLite file (./bridge.db) just works. With a
    push sink, delivery runs in a child process that `serve` starts, wakes and restarts,
    at lower CPU priority (BRIDGE_RELAY_NICE); BRIDGE_RELAY_PROCESS=false: on serve's own
    event loop; BRIDGE_RELAY=false: none.
    """
    settings = settings_of(ctx)
    if workers > 1 and settings.is_sqlite:
        # Zoho token and budget locks on SQLite hold within one process only.
        raise click.UsageError("--workers above 1 needs PostgreSQL (BRIDGE_DATABASE_URL)")
    host = host or settings.host
    port = settings.port if port is None else port  # 0: any free port
    sock = bind(host, port)  # first: a busy port is one line before anything else runs
    if not no_migrate:
        missing = database.missing_directory(settings.database_url)
        if missing is not None:
            raise click.ClickException(missing)
        try:
            asyncio.run(schema.upgrade(settings.database_url))
        except BridgeError as exc:
            raise click.ClickException(exc.message) from None
        except Exception as exc:
            if not database.is_database_error(exc):
                raise
            raise click.ClickException(database.describe(settings.database_url, exc)) from None
    else:
        asyncio.run(check_database(settings))
    problem = asyncio.run(schema.secret_problem(settings))
    if problem is not None:
        raise click.ClickException(
            f"{problem}. Stored connection secrets and channel tokens cannot be read; "
            "set BRIDGE_SECRET_KEY to the key they were stored with."
        )
    if workers > 1:
        # Worker processes build the app from the environment: pass on the CLI's override.
        os.environ["BRIDGE_DATABASE_URL"] = settings.database_url
        app: Any = "bridge.web.asgi:app_from_environment"
    else:
        app = create_app(settings, relay_child=settings.relay_process)
        tune_gc()
    server.configure(settings)  # worker processes: in their app factory (web/asgi.py)
    config = uvicorn.Config(
        app,
        factory=workers > 1,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=True,
        lifespan="on",
        **server_limits(settings),
    )
    for line in banner(settings, host, port, workers):
        click.echo(line, err=True)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            config.load_app()
            runner = uvicorn.Server(config)
            runner.run(sockets=[sock])
            if not runner.started:  # the app's start-up failed (it logged why)
                raise SystemExit(3)
    except KeyboardInterrupt:
        pass


def bind(host: str, port: int) -> socket.socket:
    """The listening socket's address taken now, so that `listening` is only said once it
    is ours; uvicorn listens on it (and shares it with its workers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            cause = "the port is in use (another zoho-bridge?); choose one with BRIDGE_PORT"
        elif exc.errno == errno.EACCES:
            cause = "permission denied (ports below 1024 need privileges); set BRIDGE_PORT"
        else:
            cause = f"{exc.strerror or exc} (check BRIDGE_HOST and BRIDGE_PORT)"
        raise click.ClickException(f"cannot listen on {host}:{port}: {cause}") from None
    sock.listen(BACKLOG)  # from here on, clients wait in the backlog until the app is up
    sock.set_inheritable(True)
    return sock


def banner(settings: Settings, host: str, port: int, workers: int = 1) -> list[str]:
    """What `serve` says once its port is bound: where, on what, doing what."""
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    lines = [f"zoho-bridge listening on {base}" + (f" ({workers} workers)" if workers > 1 else "")]
    if settings.admin_token is None:
        lines.append("  console:   off (set BRIDGE_ADMIN_TOKEN to enable the admin API)")
    else:
        lines.append(f"  console:   {base}/admin/ui/")
    lines.append(f"  database:  {database.shown(settings.database_url)}")
    lines.append(f"  sinks:     {', '.join(sink_lines(settings))}")
    lines.append(f"  jobs:      {'; '.join(job_lines(settings, workers))}")
    if settings.public_url is None:
        lines.append("  note: BRIDGE_PUBLIC_URL is not set; managed CRM channels cannot be created")
    return lines


def sink_lines(settings: Settings) -> list[str]:
    config = settings.sink_config
    shown = []
    for name in config.sinks:
        if name == "webhook" and config.webhook_url:
            shown.append(f"webhook ({database.strip_secrets(config.webhook_url)})")
        elif name in ("redis", "nats", "amqp"):
            url = getattr(config, f"{name}_url").get_secret_value()
            shown.append(f"{name} ({database.strip_secrets(url)})")
        else:
            shown.append(name)
    return shown


def job_lines(settings: Settings, workers: int = 1) -> list[str]:
    jobs = []
    if settings.push_sinks and not settings.relay:
        jobs.append("no relay (BRIDGE_RELAY=false: `zoho-bridge relay` processes deliver)")
    elif settings.push_sinks:
        where = " (a child process)" if settings.relay_process and workers == 1 else ""
        jobs.append(f"relay to {', '.join(settings.push_sinks)}{where}")
    if settings.scheduler:
        jobs.append(f"channel renewal every {settings.channel_check_seconds:g} s")
        jobs.append(f"channel check at Zoho every {settings.channel_reconcile_minutes:g} min")
        if settings.reconcile:
            jobs.append(f"reconciliation every {settings.reconcile_tick_seconds:g} s")
    else:
        jobs.append("no channel renewal or reconciliation (BRIDGE_SCHEDULER=false)")
    jobs.append(f"retention purge every {settings.purge_interval_seconds:g} s "
                f"({settings.retention_days} days)")  # fmt: skip
    return jobs


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
