"""`zoho-bridge sandbox`: run the fake Zoho locally."""

from __future__ import annotations

import asyncio

import click

from bridge.sandbox.server import serve_sandbox
from bridge.zoho.datacentres import DATA_CENTRES


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8099, show_default=True)
@click.option("--org", "orgs", multiple=True, metavar="NAME[:DC]",
              help="Create this org up front (repeat; default: demo).")  # fmt: skip
def sandbox(host: str, port: int, orgs: tuple[str, ...]) -> None:
    """Run a fake Zoho (accounts, CRM, Books, callbacks) for local trials and demos.

    For each org it prints the fake credentials as one JSON line, then a ready-to-paste
    `zoho-bridge connections add ...` line, and the CRM and Books loops to try: a Books
    webhook rule (POST /_sandbox/orgs/NAME/books-webhooks) pointed at a source's URL, and
    a record change (POST /_sandbox/orgs/NAME/books/invoices) that fires it.
    """
    for spec in orgs:
        name, _, dc = spec.partition(":")
        if not name:
            raise click.BadParameter(f"{spec!r}: give NAME or NAME:DC", param_hint="--org")
        if dc and dc not in DATA_CENTRES:
            known = ", ".join(DATA_CENTRES)
            raise click.BadParameter(f"unknown data centre {dc!r} (known: {known})",
                                     param_hint="--org")  # fmt: skip
    asyncio.run(serve_sandbox(host, port, orgs or ("demo",)))
