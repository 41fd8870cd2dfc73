"""ZohoClient's reconciliation reads on Books against the sandbox: the three strategies,
single records, failed workflow actions, quota headers on each page."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.zoho.meter import CallMeter

from .conftest import Rig, connect


async def _estimates(rig: Rig) -> list[str]:
    state = rig.sandbox.state
    state.clock.freeze()
    state.add_org("acme")
    ids = []
    for _ in range(3):
        ids.append(state.books_create("estimates", {"reference_number": "E"}))
        state.clock.advance(10)
    return ids


async def test_filter_strategy_follows_the_entitys_semantics(rig: Rig) -> None:
    ids = await _estimates(rig)
    state = rig.sandbox.state
    connection = connect(rig.sandbox, "acme")
    since = state.clock.dt() - timedelta(seconds=20)  # the second record's time

    async def listed() -> list[str]:
        pages = [
            p async for p in rig.client.books_pages(connection, "estimates", "filter", since=since)
        ]
        return [r["estimate_id"] for p in pages for r in p.rows]

    assert await listed() == ids[1:]
    state.books_entity_settings("estimates", filter="equal")
    assert await listed() == [ids[1]]  # what a setup probe must catch (B2)
    with pytest.raises(ValueError, match="since"):
        async for _page in rig.client.books_pages(connection, "estimates", "filter"):
            pass


async def test_sorted_strategy_walks_newest_first_and_stops_at_the_checkpoint(rig: Rig) -> None:
    ids = await _estimates(rig)
    state = rig.sandbox.state
    for _ in range(400):
        state.books_create("estimates", {})
    state.clock.advance(10)
    state.books_update("estimates", ids[0], {"status": "sent"})
    meter = CallMeter()
    async for page in rig.client.books_pages(
        connect(rig.sandbox, "acme"), "estimates", "sorted", meter=meter
    ):
        assert page.rows[0]["estimate_id"] == ids[0]
        assert (page.page, page.has_more, page.server_time) == (1, True, state.clock.dt())
        assert page.rate_limit is not None
        assert page.rate_limit.remaining == page.rate_limit.limit - 1  # type: ignore[operator]
        break
    assert meter.books_calls == meter.calls == 1


async def test_scan_reads_every_page_duplicates_included(rig: Rig) -> None:
    ids = await _estimates(rig)
    rig.sandbox.state.books_duplicate_every = 3
    pages = [
        p async for p in rig.client.books_pages(connect(rig.sandbox, "acme"), "estimates", "scan")
    ]
    assert [r["estimate_id"] for p in pages for r in p.rows] == [*ids, ids[2]]
    assert [(p.page, p.has_more) for p in pages] == [(1, False)]


async def test_get_one_record_and_the_failed_actions_list(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    state.books_webhook("payment", "http://127.0.0.1:9/down")
    payment = state.books_create("customerpayments", {"amount": 12.5})
    await state.flush()
    record = await rig.client.books_get(connection, "customerpayments", payment)
    assert record is not None
    assert (record["payment_id"], record["amount"]) == (payment, 12.5)
    assert await rig.client.books_get(connection, "payment", "404") is None
    with pytest.raises(ValueError):
        await rig.client.books_get(connection, "journals", payment)
    pages = [p async for p in rig.client.books_failed_actions(connection)]
    assert [(a["entity"], a["entity_id"]) for p in pages for a in p.rows] == [("payment", payment)]
