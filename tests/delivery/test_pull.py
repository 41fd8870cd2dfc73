"""Pull subscriptions through the real app: long-poll, ack, filters, tokens, rewind."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.support import ADMIN

from .conftest import Bridge, BridgeFactory


async def _subscribe(b: Bridge, name: str, **body: Any) -> dict[str, str]:
    r = await b.client.post("/admin/subscriptions", json={"name": name, **body}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def _read(b: Bridge, name: str, auth: dict[str, str], **params: Any) -> httpx.Response:
    return await b.client.get(f"/v1/subscriptions/{name}/events", params=params, headers=auth)


async def test_long_poll_wakes_on_a_new_webhook(bridge: BridgeFactory) -> None:
    async with bridge() as b:
        auth = await _subscribe(b, "billing")
        waiting = asyncio.create_task(_read(b, "billing", auth, wait=10))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        posted = time.monotonic()
        await b.post_crm("1")
        answer = await waiting
        assert time.monotonic() - posted < 0.5  # woken by the commit, not a poll
        page = answer.json()
        [envelope] = page["items"]
        assert envelope["zohorecordid"] == "1"
        assert envelope["specversion"] == "1.0"
        assert page["next"] == envelope["bridgeseq"]
        empty = await _read(b, "billing", auth, after=page["next"], wait=0)
        assert empty.json() == {"items": [], "next": page["next"]}


async def test_ack_moves_the_default_cursor_forward_only(bridge: BridgeFactory) -> None:
    async with bridge() as b:
        await b.post_crm("old")
        auth = await _subscribe(b, "late")  # starts after what is already stored
        assert (await _read(b, "late", auth)).json()["items"] == []
        await b.post_crm("1", "2", "3")
        items = (await _read(b, "late", auth, limit=2)).json()["items"]
        assert [e["zohorecordid"] for e in items] == ["1", "2"]
        r = await b.client.post("/v1/subscriptions/late/ack", json={"seq": items[0]["bridgeseq"]},
                                headers=auth)  # fmt: skip
        assert r.json() == {"acked_seq": items[0]["bridgeseq"]}
        after_ack = (await _read(b, "late", auth)).json()["items"]
        assert [e["zohorecordid"] for e in after_ack] == ["2", "3"]
        await b.client.post("/v1/subscriptions/late/ack", json={"seq": 1}, headers=auth)
        assert [e["zohorecordid"] for e in (await _read(b, "late", auth)).json()["items"]] == [
            "2", "3"
        ]  # fmt: skip
        r = await b.client.post("/admin/subscriptions/late/rewind", json={"seq": 0},
                                headers=ADMIN)  # fmt: skip
        assert r.json() == {"acked_seq": 0}
        replayed = (await _read(b, "late", auth)).json()["items"]
        assert [e["zohorecordid"] for e in replayed] == ["old", "1", "2", "3"]
        assert replayed[1]["id"] == items[0]["id"]  # same envelope id on replay
        # A cursor past the newest event would silently skip events still to come.
        ahead = await b.client.post("/v1/subscriptions/late/ack", json={"seq": 99}, headers=auth)
        assert ahead.status_code == 400
        assert "past the newest event (4)" in ahead.json()["message"]
        r = await b.client.post("/admin/subscriptions/nobody/rewind", json={"seq": 0},
                                headers=ADMIN)  # fmt: skip
        assert r.status_code == 404
        long = await b.client.post("/admin/subscriptions", json={"name": "x", "module": "M" * 101},
                                   headers=ADMIN)  # fmt: skip
        assert long.status_code == 400


async def test_filters(bridge: BridgeFactory) -> None:
    async with bridge() as b:
        auth = await _subscribe(b, "deals", module="Deals", operation="created",
                                from_start=True)  # fmt: skip
        await b.post_crm("L1", module="Leads")
        await b.post_crm("D1", module="Deals")
        await b.post_crm("D2", module="Deals", operation="update", server_time=5)
        items = (await _read(b, "deals", auth)).json()["items"]
        assert [(e["zohomodule"], e["zohorecordid"]) for e in items] == [("Deals", "D1")]


async def test_tokens(bridge: BridgeFactory) -> None:
    async with bridge() as b:
        auth = await _subscribe(b, "one")
        await _subscribe(b, "two")
        listed = await b.client.get("/admin/subscriptions", headers=ADMIN)
        assert [s["name"] for s in listed.json()["items"]] == ["one", "two"]
        assert auth["Authorization"].split()[1] not in listed.text
        for name, headers in (
            ("two", auth),  # another subscription's token
            ("one", {"Authorization": "Bearer wrong-token-of-some-length"}),
            ("one", {}),
            ("nobody", auth),
        ):
            r = await _read(b, name, headers)
            assert r.status_code == 401, (name, r.text)
            assert r.json()["error"] == "unauthorized"
        r = await b.client.post("/v1/subscriptions/one/ack", json={"seq": 1},
                                headers={"Authorization": "Bearer nope"})  # fmt: skip
        assert r.status_code == 401
        assert (await _read(b, "one", auth)).status_code == 200
        dup = await b.client.post("/admin/subscriptions", json={"name": "one"}, headers=ADMIN)
        assert dup.status_code == 409
        gone = await b.client.delete("/admin/subscriptions/one", headers=ADMIN)
        assert gone.status_code == 204
        assert (await _read(b, "one", auth)).status_code == 401
        bad = await _read(b, "two", auth, wait=999)
        assert bad.status_code in (400, 401)


async def test_cached_subscriptions_never_hold_back_the_cursor_or_a_removal_here(
    bridge: BridgeFactory,
) -> None:
    """Two replicas on one database, subscriptions cached for a minute: a read without
    `after` always starts at the acknowledged position, wherever it was acknowledged; a
    subscription removed through a replica is refused by it at once; the other refuses it
    at once for reads that start at the acknowledged position, and within
    BRIDGE_LOOKUP_CACHE_SECONDS for reads that give `after`."""
    async with bridge(lookup_cache_seconds=60) as one, bridge(lookup_cache_seconds=60) as two:
        auth = await _subscribe(one, "cached")
        await one.post_crm("1", "2", "3")
        items = (await _read(two, "cached", auth, after=0)).json()["items"]  # now cached
        assert [e["zohorecordid"] for e in items] == ["1", "2", "3"]
        for replica, acked in ((two, items[0]), (one, items[1])):
            r = await replica.client.post("/v1/subscriptions/cached/ack", headers=auth,
                                          json={"seq": acked["bridgeseq"]})  # fmt: skip
            assert r.status_code == 200, r.text
            rest = (await _read(two, "cached", auth)).json()["items"]
            assert rest == items[items.index(acked) + 1 :]
        gone = await two.client.delete("/admin/subscriptions/cached", headers=ADMIN)
        assert gone.status_code == 204
        assert (await _read(two, "cached", auth, after=0)).status_code == 401
        other = await _subscribe(one, "elsewhere")
        assert (await _read(two, "elsewhere", other, after=0)).status_code == 200
        gone = await one.client.delete("/admin/subscriptions/elsewhere", headers=ADMIN)
        assert gone.status_code == 204
        assert (await _read(one, "elsewhere", other, after=0)).status_code == 401
        assert (await _read(two, "elsewhere", other)).status_code == 401
        assert (await _read(two, "elsewhere", other, after=0)).status_code == 200  # cached


async def test_openapi_lists_the_delivery_surface(bridge: BridgeFactory) -> None:
    async with bridge() as b:
        paths = (await b.client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/subscriptions/{name}/events", "/v1/subscriptions/{name}/ack",
                 "/admin/outbox", "/admin/outbox/retry", "/admin/replay", "/admin/status",
                 "/admin/events/{event_id}/replay", "/admin/subscriptions/{name}/rewind"):  # fmt: skip
        assert path in paths
    assert paths["/v1/subscriptions/{name}/events"]["get"]["security"] == [{"subscription": []}]


async def test_long_polls_of_a_subscription_answer_at_most_once_per_linger(
    bridge: BridgeFactory,
) -> None:
    """BRIDGE_LONG_POLL_LINGER_SECONDS: an event after a quiet spell goes out at once;
    under a steady stream the next long-poll waits out the linger and carries every event
    committed meanwhile; a read without `wait`, and the read after a full page, go at once."""
    linger = 0.6
    async with bridge(long_poll_linger_seconds=linger) as b:
        auth = await _subscribe(b, "paced")
        waiting = asyncio.create_task(_read(b, "paced", auth, wait=10))
        await asyncio.sleep(0.2)
        await b.post_crm("1")
        first = await waiting
        answered = time.monotonic()
        assert [e["zohorecordid"] for e in first.json()["items"]] == ["1"]
        # A steady stream: three more commits while the consumer comes back at once.
        await b.post_crm("2")
        cursor = first.json()["next"]
        paced = asyncio.create_task(_read(b, "paced", auth, after=cursor, wait=10))
        await asyncio.sleep(0.2)
        assert not paced.done()  # events are there, but the linger has not passed
        unpaced = await _read(b, "paced", auth, after=cursor)  # no wait: at once
        assert [e["zohorecordid"] for e in unpaced.json()["items"]] == ["2"]
        await b.post_crm("3")
        await b.post_crm("4")
        second = await paced
        waited = time.monotonic() - answered
        assert linger - 0.05 <= waited < linger + 1.0, waited
        assert [e["zohorecordid"] for e in second.json()["items"]] == ["2", "3", "4"]
        # A full page: more may wait, so the next long-poll is answered at once.
        await b.post_crm("5", "6")
        cursor = second.json()["next"]
        full = await _read(b, "paced", auth, after=cursor, wait=10, limit=1)  # paced itself
        started = time.monotonic()
        following = await _read(b, "paced", auth, after=full.json()["next"], wait=10)
        assert [e["zohorecordid"] for e in following.json()["items"]] == ["6"]
        assert time.monotonic() - started < linger / 2
        # After a quiet spell longer than the linger: at once again.
        await asyncio.sleep(linger)
        late = asyncio.create_task(_read(b, "paced", auth, after=following.json()["next"], wait=10))
        await asyncio.sleep(0.1)
        posted = time.monotonic()
        await b.post_crm("7")
        assert [e["zohorecordid"] for e in (await late).json()["items"]] == ["7"]
        assert time.monotonic() - posted < linger / 2
