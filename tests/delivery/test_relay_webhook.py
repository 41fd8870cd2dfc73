"""Outbox and relay through the real app to a local HTTP subscriber, on both databases."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import func, select

from bridge.sinks.factory import SinkConfig
from bridge.store.models import DeliveryRow, EventRow
from tests.sinks.support import closed_port_socket
from tests.support import ADMIN

from .conftest import BridgeFactory, Recorder, eventually, recorder_at, webhook_config


async def test_each_record_in_seq_order_across_many_records(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    async with bridge(webhook_config(recorder.url)) as b:
        for t in range(8):  # eight changes each to five records, interleaved
            await b.post_crm(*[f"r{n}" for n in range(5)], server_time=1000 + t)
        await eventually(lambda: len(recorder.envelopes) == 40)
    for n in range(5):
        seqs = [seq for record, seq in recorder.records() if record == f"r{n}"]
        assert seqs == sorted(seqs)
        assert len(seqs) == 8


async def test_requests_in_flight_reuse_kept_alive_connections(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.delay = 0.02  # every request of a batch is in flight at once
    async with bridge(webhook_config(recorder.url), relay_concurrency=32) as b:
        for t in range(4):  # batches of 100, each sent 32 at a time
            await b.post_crm(*[f"k{n}" for n in range(100)], server_time=2000 + t)
        await eventually(lambda: len(recorder.envelopes) == 400, timeout=20)
    # 400 requests, at most 32 at a time, over no more connections than that: none is
    # closed after its request and opened again (httpx keeps 20 alive by default, so
    # with more in flight than that it reopened connections every round).
    assert len(recorder.peers) <= 32


async def test_failing_record_waits_in_order_without_blocking_others(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail["A"] = 503
    async with bridge(webhook_config(recorder.url)) as b:
        for t in range(3):
            await b.post_crm("A", "B", server_time=2000 + t)
        await eventually(lambda: len(recorder.envelopes) == 3)
        assert [r for r, _ in recorder.records()] == ["B", "B", "B"]
        assert recorder.attempts["A"] >= 2  # retried, while A's later events were held back
        for _ in range(100):  # the last B may be received but not yet marked delivered
            pending = await b.outbox(status="pending")
            if len(pending) == 3:
                break
        assert len(pending) == 3
        assert sum(1 for p in pending if p["attempts"] > 0) == 1  # only A's first was tried
        del recorder.fail["A"]
        await eventually(lambda: len(recorder.envelopes) == 6)
    a_seqs = [seq for record, seq in recorder.records() if record == "A"]
    assert a_seqs == sorted(a_seqs)
    assert len(a_seqs) == 3


async def test_outbox_rows_are_written_with_the_event(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    async with bridge(webhook_config(recorder.url)) as b:
        await b.post_crm("1", "2", "3")
        async with b.runtime.engine.connect() as conn:
            events = await conn.scalar(select(func.count()).select_from(EventRow))
            rows = await conn.scalar(select(func.count()).select_from(DeliveryRow))
        # The relay may already have delivered them; the rows exist either way.
        assert (events, rows) == (3, 3)
        await eventually(lambda: len(recorder.envelopes) == 3)


async def test_retry_until_the_subscriber_comes_back(bridge: BridgeFactory) -> None:
    sock = closed_port_socket()  # bound, not listening: connections are refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    recorder = Recorder()
    try:
        async with bridge(webhook_config(url), max_attempts=2) as b:
            await b.post_crm("1")
            rows: list[dict[str, object]] = []
            for _ in range(200):
                rows[:] = await b.outbox(status="pending")
                if rows and rows[0]["last_error"]:
                    break
            assert rows and "webhook" in str(rows[0]["last_error"])
            # Probed again and again, but a subscriber that cannot be reached spends none
            # of the row's retry budget: it is neither counted nor dead-lettered.
            for _ in range(20):
                [row] = await b.outbox()
                assert (row["status"], row["attempts"]) == ("pending", 0)
            async with recorder_at(sock, recorder):
                await eventually(lambda: len(recorder.envelopes) == 1)
            delivered = await b.outbox(status="delivered")
            assert len(delivered) == 1
            assert delivered[0]["attempts"] == 1
    finally:
        sock.close()


async def test_dead_letters_then_retry_by_the_admin_api(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail["X"] = 500
    recorder.fail["P"] = 400
    async with bridge(webhook_config(recorder.url), max_attempts=2) as b:
        await b.post_crm("X", "P", "ok")
        await eventually(lambda: recorder.attempts.get("X", 0) == 2 and "P" in recorder.attempts)
        await eventually(lambda: len(recorder.envelopes) == 1)
        for _ in range(100):
            dead = await b.outbox(status="dead")
            if len(dead) == 2:
                break
        assert sorted(d["attempts"] for d in dead) == [1, 2]  # 400: at once; 500: after 2
        status = await b.status()
        [sink] = status["sinks"]
        assert (sink["name"], sink["dead"], sink["pending"], sink["disabled"]) == (
            "webhook",
            2,
            0,
            False,
        )
        assert any("2 dead" in p for p in status["problems"])
        recorder.fail.clear()
        r = await b.client.post("/admin/outbox/retry", json={"sink": "webhook"}, headers=ADMIN)
        assert r.json() == {"retried": 2}
        await eventually(lambda: len(recorder.envelopes) == 3)
        assert (await b.status())["problems"] == []
        metrics = (await b.client.get("/metrics")).text
        for outcome in ("delivered", "retry", "dead"):
            assert f'bridge_deliveries_total{{outcome="{outcome}",sink="webhook"}}' in metrics


async def test_gone_subscriber_disables_the_sink(bridge: BridgeFactory, recorder: Recorder) -> None:
    recorder.fail["G"] = 410
    async with bridge(webhook_config(recorder.url)) as b:
        await b.post_crm("G")
        for _ in range(200):
            status = await b.status()
            if status["sinks"][0]["disabled"]:
                break
        assert status["sinks"][0]["disabled"] is True
        assert "410" in status["sinks"][0]["disabled_reason"]
        await b.post_crm("later")  # held while the sink is disabled
        pending = await b.outbox(status="pending")
        assert len(pending) == 1
        recorder.fail.clear()
        await b.client.post("/admin/outbox/retry", json={}, headers=ADMIN)
        await eventually(lambda: len(recorder.envelopes) == 2)


async def test_replay_sends_the_same_envelope_again(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    async with bridge(webhook_config(recorder.url)) as b:
        await b.post_crm("1", "2")
        await eventually(lambda: len(recorder.envelopes) == 2)
        first = recorder.envelopes[0]
        r = await b.client.post(f"/admin/events/{first['id']}/replay", json={}, headers=ADMIN)
        assert r.status_code == 202
        assert r.json() == {"queued": 1, "sinks": ["webhook"]}
        await eventually(lambda: len(recorder.envelopes) == 3)
        assert recorder.bodies[2] == recorder.bodies[0]  # same bytes, same id
        r = await b.client.post("/admin/replay", json={"since": "2000-01-01T00:00:00Z"},
                                headers=ADMIN)  # fmt: skip
        assert r.json() == {"events": 2, "sinks": ["webhook"]}
        await eventually(lambda: len(recorder.envelopes) == 5)
        assert sorted(recorder.ids()[3:]) == sorted(recorder.ids()[:2])
        replays = [d for d in await b.outbox() if d["replay"]]
        assert len(replays) == 3
        await b.post_crm("3", server_time=1718117126999)  # another delivery
        events = (await b.client.get("/admin/events", headers=ADMIN)).json()["items"]
        first_delivery = next(e["request_id"] for e in events if e["record_id"] == "1")
        r = await b.client.post("/admin/replay", headers=ADMIN, json={
            "since": "2000-01-01T00:00:00Z", "request_id": first_delivery})  # fmt: skip
        assert r.json() == {"events": 2, "sinks": ["webhook"]}  # not the third event
        bad = await b.client.post("/admin/replay", json={"sink": "pull"}, headers=ADMIN)
        assert bad.status_code == 400
        assert "rewind" in bad.json()["message"]
        missing = await b.client.post("/admin/events/nope/replay", headers=ADMIN)
        assert missing.status_code == 404


async def test_two_relays_deliver_every_event_exactly_once(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    # Two bridges on one database, each with its own relay, claiming side by side.
    recorder.delay = 0.002
    config = webhook_config(recorder.url)
    async with bridge(config, relay_batch=7) as first, bridge(config, relay_batch=7) as second:
        for t in range(20):
            target = first if t % 2 else second
            await target.post_crm(*[f"r{n}" for n in range(10)], server_time=3000 + t)
        await eventually(lambda: len(recorder.envelopes) >= 200, timeout=15)
        await eventually(lambda: not any(recorder.in_flight.values()))
        for _ in range(100):
            delivered = await first.outbox(status="delivered")
            if len(delivered) == 200:
                break
        assert len({d["lease_owner"] for d in delivered}) == 2  # both relays took part
    ids = recorder.ids()
    assert len(ids) == len(set(ids)) == 200
    assert recorder.overlaps == 0
    for n in range(10):
        seqs = [seq for record, seq in recorder.records() if record == f"r{n}"]
        assert seqs == sorted(seqs)


async def test_a_sink_that_cannot_start_shows_in_status(bridge: BridgeFactory) -> None:
    sock = closed_port_socket()
    config = SinkConfig(sinks=("pull", "redis"), broker_timeout=1,
                        redis_url=SecretStr(f"redis://127.0.0.1:{sock.getsockname()[1]}/0"))  # fmt: skip
    try:
        async with bridge(config) as b:
            await b.post_crm("1")
            for _ in range(200):
                status = await b.status()
                if status["problems"]:
                    break
            assert any(p.startswith("sink redis cannot start") for p in status["problems"])
            assert status["sinks"][0]["pending"] == 1
            [event] = (await b.client.get("/admin/events", headers=ADMIN)).json()["items"]
            r = await b.client.post(f"/admin/events/{event['id']}/replay", headers=ADMIN)
            assert r.json() == {"queued": 1, "sinks": ["redis"]}
            [sink] = (await b.status())["sinks"]
            assert (sink["pending"], sink["replays_pending"]) == (2, 1)
    finally:
        sock.close()


async def test_shutdown_finishes_the_batch_in_hand(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.delay = 0.3
    async with bridge(webhook_config(recorder.url)) as b:
        await b.post_crm("slow")
        await eventually(lambda: any(recorder.in_flight.values()))
    # The app has shut down: the publish in flight was awaited and settled, not abandoned.
    async with bridge() as after:
        [row] = await after.outbox()
        assert row["status"] == "delivered"
