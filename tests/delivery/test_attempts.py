"""Every publish attempt is kept: outcome, HTTP status, error, response excerpt, latency,
replica; a manual retry adds attempts and never rewrites the earlier ones; retention purges
them with their delivery. Against a real relay and a real subscriber, on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from structlog.testing import capture_logs

from bridge.services.retention import purge
from tests.delivery.conftest import Bridge, BridgeFactory, Recorder, webhook_config
from tests.support import ADMIN

RECORD = "4876876000000503"


async def _row(b: Bridge) -> dict[str, Any]:
    [row] = await b.outbox(sink="webhook")
    answer = await b.client.get(f"/admin/outbox/{row['id']}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def _until(b: Bridge, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await _row(b)
        if check(row):
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached: {row}")
        await asyncio.sleep(0.05)


async def test_attempts_are_kept_across_retries_and_purged_with_the_delivery(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail = {RECORD: 503}
    recorder.fail_body = b'{"error": "busy: try later", "api_key": "sk-live-0123456789"}'
    async with bridge(webhook_config(recorder.url), max_attempts=3) as b:
        await b.post_crm(RECORD)
        dead = await _until(b, lambda r: r["status"] == "dead")
        attempts = dead["attempts"]
        assert [a["attempt"] for a in attempts] == [1, 2, 3]
        assert [a["outcome"] for a in attempts] == ["retry", "retry", "dead"]
        assert {a["status_code"] for a in attempts} == {503}
        assert all("HTTP 503" in a["error"] for a in attempts)
        # The start of the answer, secret-named fields blanked.
        assert {a["response"] for a in attempts} == {
            '{"error": "busy: try later", "api_key": "[redacted]"}'
        }
        assert all(a["latency_ms"] > 0 for a in attempts)
        assert {a["replica"] for a in attempts} == {b.runtime.replica}

        recorder.fail = {}
        retried = await b.client.post("/admin/outbox/retry", headers=ADMIN,
                                      json={"ids": [dead["id"]]})  # fmt: skip
        assert retried.json() == {"retried": 1}
        done = await _until(b, lambda r: r["status"] == "delivered")
        assert done["attempts"][:3] == attempts  # history is never rewritten
        [last] = done["attempts"][3:]
        assert (last["attempt"], last["outcome"], last["error"]) == (4, "delivered", None)
        # The delivering try is recorded on the row itself (migration 0013), read back
        # as the last attempt: when it was delivered, by whom, how long the publish took.
        assert (last["at"], last["replica"]) == (done["delivered_at"], b.runtime.replica)
        assert last["latency_ms"] > 0 and last["status_code"] is None
        engine = b.runtime.engine
        async with engine.connect() as conn:
            stored = (await conn.execute(text("SELECT count(*) FROM delivery_attempts"))).scalar()
        assert stored == 3

        later = b.runtime.clock() + timedelta(days=60)
        assert await purge(engine, days=30, now=later) == 1
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM delivery_attempts"))).scalar()
        assert left == 0
        assert (await b.client.get(f"/admin/outbox/{dead['id']}", headers=ADMIN)).status_code == 404


async def test_an_unreachable_sink_records_its_probes_without_spending_attempts(
    bridge: BridgeFactory,
) -> None:
    from tests.sinks.support import closed_port_socket

    sock = closed_port_socket()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/in"
        async with bridge(webhook_config(url)) as b:
            await b.post_crm(RECORD)
            row = await _until(b, lambda r: len(r["attempts"]) >= 2)
            assert {a["outcome"] for a in row["attempts"]} == {"unavailable"}
            assert all(a["status_code"] is None for a in row["attempts"])
            assert row["attempts"][0]["error"].startswith("webhook http://127.0.0.1:")
            outbox = (await b.outbox(sink="webhook"))[0]
            assert outbox["attempts"] == 0  # an outage spends no attempt
    finally:
        sock.close()


async def test_unknown_outbox_rows_are_404(bridge: BridgeFactory, recorder: Recorder) -> None:
    async with bridge(webhook_config(recorder.url)) as b:
        for odd in ("0", "99999", "-1", "x", "9" * 30, "1.5"):
            answer = await b.client.get(f"/admin/outbox/{odd}", headers=ADMIN)
            assert answer.status_code == 404, (odd, answer.text)


async def test_a_sink_disabled_by_a_410_says_so_even_after_another_dead_letter(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail = {"4876876000000400": 400, "4876876000000410": 410}
    async with bridge(webhook_config(recorder.url)) as b:
        await b.post_crm("4876876000000400", "4876876000000410")
        for _ in range(200):
            sinks = (await b.status())["sinks"]
            if sinks and sinks[0]["disabled"]:
                break
            await asyncio.sleep(0.05)
        [sink] = (await b.status())["sinks"]
        assert sink["disabled"] is True
        assert "410" in sink["disabled_reason"], sink


async def test_retrying_rows_by_id_switches_on_only_their_sink(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail = {"4876876000000410": 410}
    async with bridge(webhook_config(recorder.url)) as b:
        await b.post_crm("4876876000000410")
        for _ in range(200):
            [sink] = (await b.status())["sinks"]
            if sink["disabled"]:
                break
            await asyncio.sleep(0.05)
        [dead] = await b.outbox(status="dead")
        other = await b.client.post("/admin/outbox/retry", headers=ADMIN, json={"ids": [999999]})
        assert other.json() == {"retried": 0}
        [sink] = (await b.status())["sinks"]
        assert sink["disabled"] is True  # no row of it was retried: it stays off
        recorder.fail = {}
        mine = await b.client.post("/admin/outbox/retry", headers=ADMIN, json={"ids": [dead["id"]]})
        assert mine.json() == {"retried": 1}
        [sink] = (await b.status())["sinks"]
        assert sink["disabled"] is False


async def test_a_history_the_database_refuses_does_not_hold_back_the_settlement(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    """The batch is settled with its attempts in one transaction; if the database refuses
    the attempts (here a trigger), the rows are still settled, once, and a warning says
    the history line was lost. (A delivering try is recorded on its row, so the refused
    attempt is a failed one: a 400, dead at once.)"""
    recorder.fail = {RECORD: 400}
    async with bridge(webhook_config(recorder.url)) as b:
        engine = b.runtime.engine
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                await conn.execute(text(
                    "CREATE FUNCTION refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'no history today'; END $$"
                ))  # fmt: skip
                await conn.execute(text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON delivery_attempts "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_attempt()"
                ))  # fmt: skip
            else:
                await conn.execute(text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON delivery_attempts "
                    "BEGIN SELECT RAISE(ABORT, 'no history today'); END"
                ))  # fmt: skip
        try:
            with capture_logs() as logs:
                await b.post_crm(RECORD)
                row = await _until(b, lambda r: r["status"] == "dead")
            assert row["attempts"] == [] and row["last_error"]
            assert recorder.attempts[RECORD] == 1
            assert [e["event"] for e in logs if "not recorded" in e["event"]] == [
                "delivery attempts not recorded"
            ]
            await asyncio.sleep(0.3)  # the relay's next turns publish nothing again
            assert recorder.attempts[RECORD] == 1
        finally:
            async with engine.begin() as conn:
                await conn.execute(text("DROP TRIGGER refuse" + (
                    " ON delivery_attempts" if engine.dialect.name == "postgresql" else ""
                )))  # fmt: skip
                if engine.dialect.name == "postgresql":
                    await conn.execute(text("DROP FUNCTION refuse_attempt()"))
