"""Books in the sandbox: the nine entities, single records, `last_modified_time` and
`sort_column` per entity, duplicate rows, quota headers and failed workflow actions
(zoho.md §3, §4.1; reconciliation.md B1-B12)."""

from __future__ import annotations

import httpx
import pytest

from bridge.domain.books_entities import BOOKS_ENTITIES

from .conftest import Api, Receiver


async def test_all_nine_entities_round_trip_with_webhooks_under_their_key(
    api: Api, receiver: Receiver
) -> None:
    state = api.state
    for entity in BOOKS_ENTITIES:
        state.books_webhook(entity.path, f"{receiver.url}/{entity.key}")
    for entity in BOOKS_ENTITIES:
        record = state.books_create(entity.key, {"reference_number": "R-1"})
        state.books_update(entity.path, record, {"reference_number": "R-2"})
        got = await api.books(f"{entity.path}/{record}")
        assert got.json()[entity.key][entity.id_field] == record
        assert got.json()[entity.key]["reference_number"] == "R-2"
        [row] = (await api.books(entity.path)).json()[entity.path]
        assert row[entity.id_field] == record
        state.books_delete(entity.path, record)
        missing = await api.books(f"{entity.path}/{record}")
        assert (missing.status_code, missing.json()["code"]) == (404, 1002)
    await state.flush()
    assert len(receiver.received) == 3 * len(BOOKS_ENTITIES)
    for entity in BOOKS_ENTITIES:
        mine = [
            r
            for r, p in zip(receiver.received, receiver.paths, strict=True)
            if p == f"/{entity.key}"
        ]
        assert [list(r) for r in mine] == [[entity.key]] * 3
    assert (await api.books("journals")).json() == {"code": 5, "message": "Invalid URL Passed"}
    with pytest.raises(KeyError):
        state.books_create("journals", {})


async def _three_times(api: Api) -> list[str]:
    """Records modified at t0, t0+10 and t0+20 (created in that order)."""
    ids = []
    for _ in range(3):
        ids.append(api.state.books_create("estimates", {}))
        api.state.clock.advance(10)
    return ids


async def test_last_modified_time_filter_modes(api: Api) -> None:
    ids = await _three_times(api)
    middle = api.state.org().books_records["estimates"][ids[1]]["last_modified_time"]
    since = middle[:19]  # naive UTC, as the client sends it

    async def listed() -> list[str]:
        rows = (await api.books("estimates", last_modified_time=since)).json()["estimates"]
        return [r["estimate_id"] for r in rows]

    assert await listed() == ids[1:]  # default: at or after
    api.state.books_entity_settings("estimates", filter="equal")
    assert await listed() == [ids[1]]  # hotglue's journals (B2)
    api.state.books_entity_settings("estimates", filter="ignored")
    assert await listed() == ids
    with pytest.raises(ValueError, match="filter"):
        api.state.books_entity_settings("estimates", filter="greater")


async def test_sorting_by_last_modified_time_per_entity(api: Api, http: httpx.AsyncClient) -> None:
    ids = await _three_times(api)
    api.state.books_update("estimates", ids[0], {"status": "sent"})
    default = (await api.books("estimates")).json()
    assert [r["estimate_id"] for r in default["estimates"]] == ids  # created_time ascending
    newest_first = await api.books("estimates", sort_column="last_modified_time", sort_order="D")
    assert [r["estimate_id"] for r in newest_first.json()["estimates"]] == [ids[0], ids[2], ids[1]]
    await http.put(f"{api.sandbox.url}/_sandbox/books-settings/estimate", json={"sortable": False})
    refused = await api.books("estimates", sort_column="last_modified_time", sort_order="D")
    assert refused.status_code == 400
    assert refused.json() == {"code": 2, "message": "Invalid value passed for sort_column"}


async def test_duplicate_rows_can_straddle_pages(api: Api) -> None:
    ids = [api.state.books_create("invoices", {}) for _ in range(5)]
    api.state.books_duplicate_every = 2
    first = (await api.books("invoices", per_page="4")).json()
    second = (await api.books("invoices", per_page="4", page="2")).json()
    got = [r["invoice_id"] for r in first["invoices"] + second["invoices"]]
    assert got == [ids[0], ids[1], ids[1], ids[2], ids[3], ids[3], ids[4]]
    assert first["page_context"]["has_more_page"] is True


async def test_answers_carry_the_daily_quota_headers(api: Api) -> None:
    api.state.org().books_daily = 3
    first = await api.books("invoices")
    assert (first.headers["x-rate-limit-limit"], first.headers["x-rate-limit-remaining"]) == (
        "3",
        "2",
    )
    assert first.headers["x-rate-limit-reset"] == "86400"
    api.state.clock.advance(100)
    await api.books("contacts")
    third = await api.books("items")
    assert third.headers["x-rate-limit-remaining"] == "0"
    assert third.headers["x-rate-limit-reset"] == "86300"  # when the first call leaves the day
    refused = await api.books("items")
    assert (refused.status_code, refused.headers["x-rate-limit-remaining"]) == (429, "0")


async def test_failed_webhook_deliveries_are_listed(api: Api, receiver: Receiver) -> None:
    state = api.state
    state.books_webhook("invoices", "http://127.0.0.1:9/unreachable")
    state.books_webhook("contacts", receiver.url)
    invoice = state.books_create("invoices", {})
    state.books_create("contacts", {})
    await state.flush()
    answer = await api.http.get(
        f"{api.base}/books/v3/settings/workflows/failedactions", params={"organization_id": "777"}
    )
    [failed] = answer.json()["failed_actions"]
    assert (failed["entity"], failed["entity_id"], failed["action_type"]) == (
        "invoice",
        invoice,
        "webhook",
    )
    assert failed["failure_reason"] == "ConnectError"
    assert answer.json()["page_context"]["has_more_page"] is False
