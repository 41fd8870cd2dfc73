"""Reconciliation end to end on Books, over real HTTP: a source linked to the connection,
the sandbox drops a share of its webhooks, and a run emits exactly the dropped versions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.sandbox import RunningSandbox
from tests.channel_rig import Rig, bridge_rig, frozen_sandbox

TOKEN = "books-source-token-0123456789"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


@pytest.fixture
async def rig(database_url: str, sandbox: RunningSandbox) -> AsyncIterator[Rig]:
    async with bridge_rig(database_url, sandbox) as running:
        created = await running.http.post(
            "/admin/sources", json={"name": "acme-books", "tokens": [TOKEN]}
        )
        assert created.status_code == 201, created.text
        linked = await running.http.patch("/admin/sources/acme-books",
                                          json={"connection": "acme"})  # fmt: skip
        assert linked.status_code == 200, linked.text
        yield running


def _hook(rig: Rig, entity: str) -> None:
    rig.state.books_webhook(entity, f"{rig.url}/hooks/books/acme-books?token={TOKEN}")


def visible_dropped(rig: Rig, entity_key: str) -> set[tuple[str, str]]:
    last = {}
    for delivery in rig.state.deliveries:
        change = delivery.change
        if change is not None and change.product == "books" and change.module == entity_key:
            last[change.record_id] = change
    dropped = rig.state.dropped_versions(product="books")
    return {
        (c.record_id, c.modified.isoformat().replace("+00:00", "Z"))
        for c in last.values()
        if c in dropped and c.operation != "delete"
    }


@pytest.mark.parametrize("behaviour", ["at_or_after", "equal", "ignored"])
async def test_dropped_webhooks_are_emitted_once_whatever_the_filter_does(
    rig: Rig, behaviour: str
) -> None:
    state = rig.state
    state.books_entity_settings("invoices", filter=behaviour)
    _hook(rig, "invoices")
    added = await rig.http.post(
        "/admin/reconciliation/watches",
        json={"connection": "acme", "product": "books", "module": "invoices"},
    )
    watch_id = added.json()["id"] if added.status_code == 201 else None
    if watch_id is None:  # the admin API may not be there yet: the service is
        watch_id = (await rig.runtime.watches.add("acme", "books", "invoices")).id
    state.drop_rate = 0.3
    ids = []
    for i in range(15):
        ids.append(state.books_create("invoices", {"invoice_number": f"INV-{i}", "total": i}))
        state.clock.advance(3)
    for record_id in ids[:6]:
        state.books_update("invoices", record_id, {"total": 1000})
        state.clock.advance(3)
    await state.flush()
    expected = visible_dropped(rig, "invoice")
    assert expected, "the seed must drop some webhooks"
    rig.hours(0.5)

    report = await rig.runtime.reconciler.run_watch(watch_id, due=False)
    assert report.outcome == "ok", report
    watch = await rig.runtime.watches.get(watch_id)
    assert watch.strategy is not None
    events = (
        await rig.http.get("/admin/events", params={"origin": "reconciliation", "limit": 1000})
    ).json()["items"]
    got = {(e["record_id"], e["occurred_at"]) for e in events}
    assert got == expected, (watch.strategy, watch.strategy_reason)
    assert all(e["module"] == "invoice" and e["source"] == "acme-books" for e in events)
    assert all(e["miss_cause"] == "missed" for e in events)
    assert all(e["data"].get("invoice_number") for e in events)  # the record, as fetched

    again = await rig.runtime.reconciler.run_watch(watch_id, due=False)
    assert again.outcome == "ok" and again.emitted == {}
