"""`zoho-bridge requests list|show`: inbound requests as received, rejected ones too."""

from __future__ import annotations

from typing import Any

import click

from bridge.cli.common import (
    print_json,
    print_table,
    remote_of,
    run_async,
    runtime_for,
    settings_of,
)
from bridge.domain.events import Product
from bridge.domain.requests import RequestStatus
from bridge.services.views import request_view


@click.group()
def requests() -> None:
    """Inbound requests (webhook deliveries) exactly as received: accepted, duplicate or
    rejected, with the reason (from the bridge at BRIDGE_URL when set)."""


@requests.command("list")
@click.option("--status", type=click.Choice([s.value for s in RequestStatus]))
@click.option("--kind", type=click.Choice([p.value for p in Product]), help="crm or books.")
@click.option("--source", help="Only this Books source.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(
    ctx: click.Context, status: str | None, kind: str | None, source: str | None, limit: int,
    as_json: bool,
) -> None:  # fmt: skip
    """List inbound requests, newest first."""
    api = remote_of(ctx)
    items: list[dict[str, Any]]
    if api is not None:
        params = {"status": status, "kind": kind, "source": source, "limit": limit}
        items = api.get("/admin/requests", params)["items"]
    else:
        async with runtime_for(settings_of(ctx)) as rt:
            found = await rt.requests.find(status=status, kind=kind, source=source, limit=limit)
        items = [request_view(r) for r in found]
    if as_json:
        print_json(items)
        return
    print_table(
        ["id", "received", "kind", "source", "method", "status", "http", "events", "reason"],
        [[r["id"], (r["received_at"] or "")[:19].replace("T", " "), r["kind"], r["source"],
          r["method"], r["status"], r["http_status"], r["event_count"], r["reason"] or ""]
         for r in items],
    )  # fmt: skip


@requests.command("show")
@click.argument("request_id")
@click.pass_context
@run_async
async def show(ctx: click.Context, request_id: str) -> None:
    """Show one inbound request as JSON: headers (secrets redacted), query, body, outcome."""
    api = remote_of(ctx)
    if api is not None:
        print_json(api.get(f"/admin/requests/{request_id}"))
        return
    async with runtime_for(settings_of(ctx)) as rt:
        found = await rt.requests.get(request_id)
    print_json(request_view(found, body_limit=None))
