"""One cause per unannounced change (reconciliation.md e #7), end to end: a channel Zoho lost
or let expire and the bridge repaired later (`gap`), the bridge itself down (`gap`), a
channel that does not cover the operation (`not_subscribed`), a Books webhook the bridge
refused (`delivery_failed`), next to plain drops while everything was healthy (`missed`).

`bridge_reconcile_missed_total` counts every cause under its own `cause` label; an alert
on `cause="missed"` is the "webhooks were lost" signal, so the other causes must never
land there. Each test checks the label and the watch's per-cause counts. A poller that
calls every unannounced change "missed" (the metric nobody reads, c #2) fails them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.sandbox import RunningSandbox
from bridge.sandbox.state import SandboxState
from tests.channel_rig import Rig, bridge_rig, frozen_sandbox
from tests.reconcile.support import (
    dropping,
    grew,
    link_books_source,
    missed_metric,
    misses,
    reconciled,
    watch_id,
    watch_views,
)


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


def leads(state: SandboxState, n: int) -> list[str]:
    return [state.crm_create("Leads", {"Last_Name": f"L{i}"}) for i in range(n)]


async def causes(rig: Rig) -> dict[str, str]:
    """The cause of each reconciled event, by record id."""
    return {e["record_id"]: e["miss_cause"] for e in await reconciled(rig)}


async def counted(rig: Rig, module: str) -> dict[str, int]:
    views = [v for v in await watch_views(rig) if v["module"] == module]
    return misses(views[0])


def expect(**groups: list[str]) -> dict[str, str]:
    return {record_id: cause for cause, ids in groups.items() for record_id in ids}


@pytest.mark.parametrize("how", ["lost", "expired"])
async def test_changes_while_a_channel_was_down_are_gap_not_missed(
    database_url: str, sandbox: RunningSandbox, how: str
) -> None:
    """Zoho loses the channel (found by the comparison with Zoho's list), or lets it expire
    (found at the next renewal); the bridge repairs it later. Changes inside the gap are
    `gap`; drops before and after it, while the channel was live, are `missed`."""
    state = sandbox.state
    async with bridge_rig(database_url, sandbox) as rig:
        channel = await rig.create(["Leads.all"])
        watch = await watch_id(rig.runtime, "Leads")
        before = await missed_metric(rig)
        with dropping(state):
            healthy = leads(state, 6)
        state.clock.advance(120)  # beyond the delivery slack (1 min)
        at_zoho = state.orgs["acme"].channels[channel]
        if how == "lost":
            assert await rig.runtime.keeper.compare_with_zoho() == {"ok": 1}  # confirmed
            state.clock.advance(60)
            del state.orgs["acme"].channels[channel]  # Zoho forgets it: no callbacks
        else:
            # Confirmed a minute before it expires, and not renewed in time.
            state.clock.advance(at_zoho.expiry.timestamp() - state.clock.now() - 60)
            assert await rig.runtime.keeper.compare_with_zoho() == {"ok": 1}
            state.clock.advance(120)
        inside = leads(state, 5)  # nobody is told: nothing to drop
        assert not [d for d in state.deliveries if d.change and d.change.record_id in inside]
        state.clock.advance(300)
        if how == "lost":
            assert await rig.runtime.keeper.compare_with_zoho() == {"renewed": 1}
        else:
            assert await rig.runtime.keeper.renew_due() == {"renewed": 1}
        state.clock.advance(5)
        with dropping(state):
            after = leads(state, 4)
        rig.hours(0.25)
        report = await rig.runtime.reconciler.run_watch(watch, due=False)
        assert report.outcome == "ok", report
        assert await causes(rig) == expect(missed=healthy + after, gap=inside)
        assert await counted(rig, "Leads") == {"missed": 10, "gap": 5}
        assert grew(before, await missed_metric(rig)) == {"Leads/missed": 10, "Leads/gap": 5}


async def test_changes_while_the_bridge_was_down_are_gap(
    database_url: str, sandbox: RunningSandbox
) -> None:
    """The bridge process stops (its heartbeat goes stale), changes are made and their
    callbacks find nobody, and it starts again: `ReconcileLoop.start` records the downtime,
    and those changes are `gap`. Drops from before it stopped stay `missed`."""
    state = sandbox.state
    async with bridge_rig(database_url, sandbox) as rig:
        await rig.create(["Leads.all"])
        watch = await watch_id(rig.runtime, "Leads")
        loop = rig.runtime.reconcile_loop
        assert loop is not None
        await loop.start()
        with dropping(state):
            healthy = leads(state, 6)
        state.clock.advance(120)
        await loop.tick()  # the last heartbeat before the bridge stops
    state.clock.advance(300)
    down = leads(state, 5)  # their callbacks go to a bridge that is not there
    await state.flush()
    assert {d.outcome for d in state.deliveries if d.change and d.change.record_id in down} == {
        "failed"
    }
    state.clock.advance(600)
    async with bridge_rig(database_url, sandbox) as rig:
        before = await missed_metric(rig)
        loop = rig.runtime.reconcile_loop
        assert loop is not None
        await loop.start()  # the heartbeat is stale: downtime recorded
        rig.hours(0.25)
        report = await rig.runtime.reconciler.run_watch(watch, due=False)
        assert report.outcome == "ok", report
        assert await causes(rig) == expect(missed=healthy, gap=down)
        assert await counted(rig, "Leads") == {"missed": 6, "gap": 5}
        assert grew(before, await missed_metric(rig)) == {"Leads/missed": 6, "Leads/gap": 5}


async def test_an_operation_no_channel_covers_is_not_subscribed(
    database_url: str, sandbox: RunningSandbox
) -> None:
    """A channel on `Leads.edit` only: a created lead was never going to be announced
    (C14), so it is `not_subscribed`; an edit whose callback was dropped is `missed`."""
    state = sandbox.state
    async with bridge_rig(database_url, sandbox) as rig:
        await rig.create(["Leads.edit"])
        watch = await watch_id(rig.runtime, "Leads")
        before = await missed_metric(rig)
        created = leads(state, 5)  # no callback: the channel does not watch creation
        state.clock.advance(3)
        with dropping(state):
            for record_id in created[:2]:
                state.crm_update("Leads", record_id, {"Last_Name": "edited"})
        edited_told = created[2]
        state.crm_update("Leads", edited_told, {"Last_Name": "told"})
        await state.flush()
        rig.hours(0.25)
        report = await rig.runtime.reconciler.run_watch(watch, due=False)
        assert report.outcome == "ok", report
        assert await causes(rig) == expect(missed=created[:2], not_subscribed=created[3:])
        assert await counted(rig, "Leads") == {"missed": 2, "not_subscribed": 2}
        assert grew(before, await missed_metric(rig)) == {
            "Leads/missed": 2, "Leads/not_subscribed": 2
        }  # fmt: skip


async def test_a_books_webhook_the_bridge_refused_is_delivery_failed(
    database_url: str, sandbox: RunningSandbox
) -> None:
    """A Books rule on Edited points at the source with a stale token: the bridge answers
    401 and Books lists the failure among its failed workflow actions (B10). Those edits
    are `delivery_failed` (Zoho's own word); a dropped creation is `missed`."""
    state = sandbox.state
    # The clock stands still: room for this run's Books calls in one minute.
    limits: dict[str, Any] = {"limits": {"books_per_minute": 100}}
    async with bridge_rig(database_url, sandbox, connection=limits) as rig:
        await link_books_source(rig, [])
        good = f"{rig.url}/hooks/books/acme-books?token=books-source-token-0123456789"
        state.books_webhook("invoices", good, actions=("insert",))
        state.books_webhook("invoices", f"{rig.url}/hooks/books/acme-books?token=stale",
                            actions=("update",))  # fmt: skip
        watch = (await rig.runtime.watches.add("acme", "books", "invoices")).id
        before = await missed_metric(rig)
        ids = [state.books_create("invoices", {"total": i}) for i in range(5)]
        with dropping(state):
            lost = state.books_create("invoices", {"total": 9})
        state.clock.advance(3)
        for record_id in ids[:3]:
            state.books_update("invoices", record_id, {"total": 100})
        await state.flush()
        refused = [d for d in state.deliveries if d.outcome == "failed"]
        assert {d.status for d in refused} == {401} and len(refused) == 3
        rig.hours(0.5)
        report = await rig.runtime.reconciler.run_watch(watch, due=False)
        assert report.outcome == "ok", report
        assert await causes(rig) == expect(delivery_failed=ids[:3], missed=[lost])
        assert await counted(rig, "invoice") == {"delivery_failed": 3, "missed": 1}
        assert grew(before, await missed_metric(rig)) == {
            "invoice/delivery_failed": 3, "invoice/missed": 1
        }  # fmt: skip
        causes_seen = Counter(e["miss_cause"] for e in await reconciled(rig))
        assert causes_seen == {"delivery_failed": 3, "missed": 1}
