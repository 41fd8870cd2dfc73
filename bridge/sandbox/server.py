"""Running the sandbox: in-process for tests, or as a foreground server for demos."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from bridge.sandbox.announce import announcement
from bridge.sandbox.app import create_sandbox_app
from bridge.sandbox.control import describe_org
from bridge.sandbox.state import SandboxState


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox server that is up: where it listens and the state behind it."""

    url: str
    state: SandboxState

    def accounts_url(self, dc: str = "com") -> str:
        """The fake accounts server of data centre `dc`."""
        return f"{self.url}/dc/{dc}/accounts"

    def api_domain(self, dc: str = "com") -> str:
        """The fake API domain of data centre `dc`."""
        return f"{self.url}/dc/{dc}/api"


@asynccontextmanager
async def serve_app(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, date_header: bool = True
) -> AsyncIterator[str]:
    """Serve any ASGI app with uvicorn in this event loop until the block ends; yields
    its base URL. `port=0` binds a free port, bound here so the URL is known up front.
    `date_header=False` leaves the `Date` header to the app (the sandbox sets its own)."""
    # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on sockets that say they are TCP;
    # with proto 0 every small answer stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", access_log=False, date_header=date_header
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # surfaces the startup error
            await asyncio.sleep(0.005)
        bound_host, bound_port = sock.getsockname()[:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def run_sandbox(
    host: str = "127.0.0.1", port: int = 0, state: SandboxState | None = None
) -> AsyncIterator[RunningSandbox]:
    """Serve a sandbox in this event loop until the block ends (tests, local demos)."""
    state = state or SandboxState()
    async with serve_app(create_sandbox_app(state), host, port, date_header=False) as url:
        yield RunningSandbox(url, state)


async def serve_sandbox(
    host: str = "127.0.0.1",
    port: int = 8099,
    orgs: Sequence[str] = ("demo",),
    announce: Callable[[str], None] = print,
) -> None:
    """Serve a sandbox in the foreground until interrupted (`zoho-bridge sandbox`).

    Each of `orgs` ("name" or "name:dc") is created up front and its credentials are
    announced as one JSON line, then as a `zoho-bridge connections add` line to paste and
    the CRM and Books loops to try (`announce.py`). They are fake credentials for a fake
    Zoho, so printing them is fine.
    """
    state = SandboxState()
    base = f"http://{host}:{port}"
    for spec in orgs:
        name, _, dc = spec.partition(":")
        org = state.add_org(name, dc or "com")
        for line in announcement(describe_org(org, base), base):
            announce(line)
    config = uvicorn.Config(create_sandbox_app(state), host=host, port=port, date_header=False)
    await uvicorn.Server(config).serve()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `python -m bridge.sandbox [--host H] [--port P] [--org NAME[:DC]]...`."""
    parser = argparse.ArgumentParser(prog="zoho-bridge sandbox", description="Run a fake Zoho.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--org", action="append", dest="orgs", help="create this org (name or name:dc) up front"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve_sandbox(args.host, args.port, args.orgs or ["demo"]))
    return 0
