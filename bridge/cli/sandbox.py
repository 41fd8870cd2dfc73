"""`zoho-bridge sandbox`: run the fake Zoho locally."""

from __future__ import annotations

import asyncio

import click

from bridge.sandbox.server import serve_sandbox


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8099, show_default=True)
@click.option("--org", "orgs", multiple=True, metavar="NAME[:DC]",
              help="Create this org up front (repeat; default: demo).")  # fmt: skip
def sandbox(host: str, port: int, orgs: tuple[str, ...]) -> None:
    """Run a fake Zoho (accounts, CRM, Books, callbacks) for local trials and demos.

    Each org's fake credentials are printed as one JSON line: feed them to
    `zoho-bridge connections add` with --accounts-url.
    """
    asyncio.run(serve_sandbox(host, port, orgs or ("demo",)))
