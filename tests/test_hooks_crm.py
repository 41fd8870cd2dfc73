"""POST /hooks/crm through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ADMIN, crm_body, sample

TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@pytest.fixture
async def channel(client: httpx.AsyncClient) -> str:
    r = await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": TOKEN, "events": ["Leads.all"],
              "source": "acme-eu"},
        headers=ADMIN,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return "1000000068001"


async def _events(client: httpx.AsyncClient, **params: str) -> list[dict[str, object]]:
    r = await client.get("/admin/events", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()["items"]
    return items


async def test_insert_is_stored_as_a_created_event(client: httpx.AsyncClient, channel: str) -> None:
    r = await client.post("/hooks/crm", json=sample("crm-insert.json"))
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["events"], body["duplicates"]) == ("accepted", 1, 0)
    [event] = await _events(client)
    assert event["id"] == body["event_ids"][0]
    assert (event["product"], event["source"], event["module"], event["operation"]) == (
        "crm", "acme-eu", "Leads", "created"
    )  # fmt: skip
    assert event["record_id"] == "5725767000003000064"
    assert event["occurred_at"] == "2024-06-11T14:45:26.473000Z"
    assert event["request_id"] == body["request_id"]


async def test_three_ids_make_three_events_in_order(
    client: httpx.AsyncClient, channel: str
) -> None:
    r = await client.post("/hooks/crm", json=sample("crm-update-several-ids.json"))
    assert r.json()["events"] == 3
    events = await _events(client)
    assert [e["record_id"] for e in reversed(events)] == [
        "5725767000003000301", "5725767000003000302", "5725767000003000303"
    ]  # fmt: skip
    seqs = [e["seq"] for e in reversed(events)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert events[0]["data"]["values"] == {
        "Lead_Status": "Junk Lead",
        "Email": "noreply@example.com",
    }


async def test_delete_and_update(client: httpx.AsyncClient, channel: str) -> None:
    await client.post("/hooks/crm", json=sample("crm-delete.json"))
    await client.post("/hooks/crm", json=sample("crm-update-affected-values.json"))
    ops = {e["module"]: e["operation"] for e in await _events(client)}
    assert ops == {"Deals": "deleted", "Leads": "updated"}


async def test_the_same_callback_twice_is_a_duplicate(
    client: httpx.AsyncClient, channel: str
) -> None:
    first = await client.post("/hooks/crm", json=crm_body())
    second = await client.post("/hooks/crm", json=crm_body())
    assert first.json()["status"] == "accepted"
    assert second.status_code == 200
    assert second.json() | {"request_id": None} == {
        "status": "duplicate", "request_id": None, "events": 0, "event_ids": [], "duplicates": 1
    }  # fmt: skip
    assert len(await _events(client)) == 1
    r = await client.get("/admin/requests", params={"status": "duplicate"}, headers=ADMIN)
    assert [item["id"] for item in r.json()["items"]] == [second.json()["request_id"]]


async def test_wrong_token_is_401_and_recorded_without_the_token(
    client: httpx.AsyncClient, channel: str
) -> None:
    r = await client.post("/hooks/crm", json=crm_body(token="guessed-token-guessed"))
    assert r.status_code == 401
    assert r.json() == {
        "error": "unauthorized",
        "message": "token does not match the channel's token",
    }
    assert await _events(client) == []
    [rejected] = (
        await client.get("/admin/requests", params={"status": "rejected"}, headers=ADMIN)
    ).json()["items"]
    assert rejected["http_status"] == 401
    assert "guessed-token" not in rejected["body"]
    assert '"token":"[redacted]"' in rejected["body"]


async def test_missing_token_is_401(client: httpx.AsyncClient, channel: str) -> None:
    body = crm_body()
    del body["token"]
    r = await client.post("/hooks/crm", json=body)
    assert (r.status_code, r.json()["message"]) == (401, "token is missing")


async def test_unknown_channel_is_404(client: httpx.AsyncClient, channel: str) -> None:
    r = await client.post("/hooks/crm", json=crm_body(channel_id="999"))
    assert r.status_code == 404
    assert r.json()["message"] == "unknown channel 999"


async def test_accepted_request_is_stored_with_the_token_redacted(
    client: httpx.AsyncClient, channel: str
) -> None:
    r = await client.post("/hooks/crm", json=crm_body(), headers={"X-Trace": "abc"})
    stored = (await client.get(f"/admin/requests/{r.json()['request_id']}", headers=ADMIN)).json()
    assert TOKEN not in stored["body"]
    assert stored["status"] == "accepted"
    assert stored["verification"] == "token ok"
    assert stored["headers"]["x-trace"] == "abc"
    assert stored["remote_addr"] == "203.0.113.7"
    assert stored["event_count"] == 1


async def test_rotated_token_both_valid_then_old_one_retired(
    client: httpx.AsyncClient, channel: str
) -> None:
    new = "a-brand-new-token-for-this-channel"
    r = await client.post(
        f"/admin/channels/{channel}/tokens",
        json={"token": new, "retire_others_after_seconds": 0},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    old = await client.post("/hooks/crm", json=crm_body(server_time=1))
    fresh = await client.post("/hooks/crm", json=crm_body(server_time=2, token=new))
    assert (old.status_code, fresh.status_code) == (401, 200)


async def test_rotation_keeps_the_old_token_during_the_grace_period(
    client: httpx.AsyncClient, channel: str
) -> None:
    new = "a-brand-new-token-for-this-channel"
    await client.post(
        f"/admin/channels/{channel}/tokens",
        json={"token": new, "retire_others_after_seconds": 3600},
        headers=ADMIN,
    )
    old = await client.post("/hooks/crm", json=crm_body(server_time=1))
    fresh = await client.post("/hooks/crm", json=crm_body(server_time=2, token=new))
    assert (old.status_code, fresh.status_code) == (200, 200)
    tokens = (await client.get(f"/admin/channels/{channel}", headers=ADMIN)).json()["tokens"]
    assert [t["valid_until"] is None for t in tokens] == [False, True]


async def _samples(
    client: httpx.AsyncClient,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await client.get("/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("bridge_webhook_requests", "bridge_events_stored", "bridge_ingest"))
    }


async def test_deliveries_are_counted_and_timed_in_metrics(
    client: httpx.AsyncClient, channel: str
) -> None:
    before = await _samples(client)
    await client.post("/hooks/crm", json=sample("crm-update-several-ids.json"))  # 3 events
    await client.post("/hooks/crm", json=sample("crm-update-several-ids.json"))  # duplicate
    await client.post("/hooks/crm", json=crm_body(token="wrong"))  # rejected
    after = await _samples(client)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = "bridge_webhook_requests_total"
    assert delta(requests, kind="crm", outcome="accepted") == 1
    assert delta(requests, kind="crm", outcome="duplicate") == 1
    assert delta(requests, kind="crm", outcome="rejected") == 1
    assert delta("bridge_events_stored_total", product="crm", origin="webhook") == 3
    assert delta("bridge_ingest_seconds_count", kind="crm") == 3
    assert delta("bridge_ingest_seconds_bucket", kind="crm", le="+Inf") == 3
    assert 0 < delta("bridge_ingest_seconds_sum", kind="crm") < 30
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == "bridge_ingest_seconds_bucket" and dict(labels)["kind"] == "crm"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
