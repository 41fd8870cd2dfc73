"""Reconciliation end to end on CRM, over real HTTP: a managed channel, the sandbox drops a
share of its callbacks, and one run emits exactly the dropped versions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.sandbox import RunningSandbox
from tests.channel_rig import Rig, bridge_rig, frozen_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


@pytest.fixture
async def rig(database_url: str, sandbox: RunningSandbox) -> AsyncIterator[Rig]:
    async with bridge_rig(database_url, sandbox) as running:
        yield running


async def _watch_id(rig: Rig, module: str) -> int:
    for watch in await rig.runtime.watches.all():
        if watch.module == module:
            return watch.id
    raise AssertionError(f"no watch on {module}")


async def _reconciled(rig: Rig) -> list[dict[str, object]]:
    items = (
        await rig.http.get("/admin/events", params={"origin": "reconciliation", "limit": 1000})
    ).json()["items"]
    return list(items)


def visible_dropped(rig: Rig) -> set[tuple[str, str]]:
    """(record id, time) of the versions a poll can see whose callback was dropped: each
    record's last change (a deletion, or its state now). Earlier versions of a record are
    gone from Zoho's lists: a poll cannot see them, and says so (zohocollapsed)."""
    last = {}
    for delivery in rig.state.deliveries:
        change = delivery.change
        if change is not None and change.product == "crm":
            last[change.record_id] = change
    dropped = rig.state.dropped_versions(product="crm")
    return {
        (c.record_id, c.modified.isoformat().replace("+00:00", "Z"))
        for c in last.values()
        if c in dropped
    }


async def test_dropped_callbacks_are_emitted_once_with_cause_missed(rig: Rig) -> None:
    state = rig.state
    await rig.create(["Leads.all"])
    watch_id = await _watch_id(rig, "Leads")
    state.drop_rate = 0.3
    ids = []
    for i in range(20):
        ids.append(state.crm_create("Leads", {"Last_Name": f"L{i}"}))
        state.clock.advance(2)
    for record_id in ids[:8]:
        state.crm_update("Leads", record_id, {"Last_Name": "changed"})
        state.clock.advance(2)
    for record_id in ids[8:11]:
        state.crm_delete("Leads", record_id)
        state.clock.advance(2)
    await state.flush()
    dropped = state.dropped_versions(product="crm")
    assert dropped, "the seed must drop some callbacks"
    rig.hours(0.25)  # past the grace period (10 min) and the settle time

    report = await rig.runtime.reconciler.run_watch(watch_id, due=False)
    assert report.outcome == "ok", report
    events = await _reconciled(rig)
    got = {(e["record_id"], e["operation"], e["occurred_at"]) for e in events}
    expected = visible_dropped(rig)
    assert {(r, t) for r, _, t in got} == expected
    assert all(e["miss_cause"] == "missed" for e in events)
    assert report.emitted == {"missed": len(expected)}
    # Deleted records are reported as deletions; the others as they are now.
    assert {r for r, op, _ in got if op == "deleted"} <= set(ids[8:11])

    # A second run finds nothing new: re-reads are absorbed, nothing is doubled.
    again = await rig.runtime.reconciler.run_watch(watch_id, due=False)
    assert again.outcome == "ok" and again.emitted == {}
    assert len(await _reconciled(rig)) == len(expected)
    status = (await rig.http.get("/admin/status")).json()
    assert not any("reconciliation" in p for p in status["problems"])
