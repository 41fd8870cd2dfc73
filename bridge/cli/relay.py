"""`zoho-bridge relay`: deliver the outbox to the push sinks in a process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable

import click
import prometheus_client

from bridge.cli.common import ENV_HELP, check_database, settings_of
from bridge.metrics import relay_registry
from bridge.process import tune_gc
from bridge.runtime import build_relay, replica_name, utc_now
from bridge.services import schema
from bridge.settings import Settings


@click.command(epilog=ENV_HELP)
@click.option(
    "--poll",
    type=click.FloatRange(0.005, 60),
    default=0.05,
    show_default=True,
    help="Seconds between looks for new rows: a relay of its own is not woken by the "
    "writer of another process, so this bounds how long a new event waits.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve this process's Prometheus metrics (deliveries, publish times, sink up, "
    "publish rate) at http://BRIDGE_HOST:PORT/metrics.",
)
@click.option(
    "--serve-socket",
    type=int,
    hidden=True,
    help="(`serve` starts its relay so.) A socket to `serve`: a byte read wakes the relay, "
    "its end stops it; the relay's metrics port is written to it.",
)
@click.option(
    "--nice",
    type=click.IntRange(0, 19),
    default=0,
    hidden=True,
    help="(`serve` starts its relay so, from BRIDGE_RELAY_NICE.) Run this much nicer than "
    "the process that started it.",
)
@click.pass_context
def relay(
    ctx: click.Context,
    poll: float,
    metrics_port: int | None,
    serve_socket: int | None,
    nice: int,
) -> None:
    """Deliver stored events to the push sinks (BRIDGE_SINKS), apart from `serve`.

    `serve` runs one as its child already (BRIDGE_RELAY_PROCESS). Run relays yourself,
    with `serve` under BRIDGE_RELAY=false, to deliver from other machines or from several
    processes. Any number of relays may run, on any machine that reaches the database:
    leases keep two from publishing the same row at once. Stops on SIGTERM or Ctrl-C
    after the batch in hand.
    """
    if serve_socket is not None:
        # Ctrl-C in `serve`'s terminal reaches this process too: `serve` stops it in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        # Before any thread starts: on Linux a thread's niceness is its own, inherited by
        # the threads it starts (the database's, the metrics server's).
        os.nice(nice)
    settings = settings_of(ctx)
    if not settings.push_sinks:
        raise click.UsageError("no push sink in BRIDGE_SINKS (pull needs no relay)")
    asyncio.run(check_database(settings))
    current, head = asyncio.run(schema.revisions(settings.database_url))
    if current != head:
        raise click.ClickException(
            f"the database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `zoho-bridge db upgrade` (or start `serve`, which applies migrations)"
        )
    if metrics_port is not None:
        prometheus_client.start_http_server(metrics_port, addr=settings.host)
    tune_gc()
    if serve_socket is None:
        click.echo(f"zoho-bridge relay delivering to {', '.join(settings.push_sinks)}", err=True)
    asyncio.run(_run(settings, poll, serve_socket))


async def _run(settings: Settings, poll: float, serve_socket: int | None = None) -> None:
    engine, sink_http, relay = build_relay(settings, utc_now, replica_name(settings), poll)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (
        (signal.SIGTERM,) if serve_socket is not None else (signal.SIGTERM, signal.SIGINT)
    ):
        loop.add_signal_handler(signum, stop.set)
    try:
        await relay.start()
        if serve_socket is not None:
            _answer_serve(socket.socket(fileno=serve_socket), relay.wake, stop.set)
        await stop.wait()
    finally:
        await relay.stop()
        if sink_http is not None:
            await sink_http.aclose()
        with contextlib.suppress(Exception):
            await engine.dispose()


def _answer_serve(sock: socket.socket, wake: Callable[[], None], stop: Callable[[], None]) -> None:
    """As `serve`'s relay (`bridge.relay_child`): wake on each byte `serve` writes, stop
    when its end closes (it stopped, or died), and tell it where the relay's metrics are."""
    sock.setblocking(False)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            wake()
        else:
            loop.remove_reader(sock)
            stop()

    loop.add_reader(sock, readable)
    server, _ = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=relay_registry())
    with contextlib.suppress(OSError):  # serve gone: `readable` stops the relay
        sock.send(f"metrics {server.server_port}\n".encode())
