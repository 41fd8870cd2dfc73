"""Each silent-loss cause of the research (reconciliation.md a.2, e #15) against the real
poller over HTTP: every test drops the callbacks of the changes it makes, so only
reconciliation can report them, and fails on the naive cursor its docstring names."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from bridge.sandbox import PageServed, RunningSandbox
from bridge.sandbox.state import SandboxState
from bridge.services.reconciler import RunReport
from tests.channel_rig import Rig, bridge_rig, frozen_sandbox, sandbox_now
from tests.reconcile.support import (
    Version,
    announced,
    dropping,
    link_books_source,
    of_event,
    reconciled,
    visible,
    watch_id,
)

LIST = "GET /crm/v8/{module}"
# The clock stands still between a test's steps, so no Books minute passes within one: a
# few more calls than reconciliation's default share (20 % of 60 a minute) must fit. 100
# a minute is the sandbox org's (and Zoho's) own limit; the share is then 20.
BOOKS_LIMITS = {"limits": {"books_per_minute": 100, "books_daily": 10_000}}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


@asynccontextmanager
async def crm_rig(
    database_url: str, sandbox: RunningSandbox, events: tuple[str, ...] = ("Leads.all",),
    **settings: Any,
) -> AsyncIterator[tuple[Rig, int]]:  # fmt: skip
    """A bridge with a managed channel on `events` and its automatic watch on the first
    module; yields the rig and that watch's id."""
    async with bridge_rig(database_url, sandbox, connection=BOOKS_LIMITS, **settings) as rig:
        await rig.create(list(events))
        yield rig, await watch_id(rig.runtime, events[0].split(".")[0])


def leads(state: SandboxState, n: int, *, per_second: int = 0, **extra: Any) -> list[str]:
    """`n` leads, `per_second` of them in each second (0: all in the current one)."""
    made = []
    for i in range(n):
        if per_second and i and i % per_second == 0:
            state.clock.advance(1)
        made.append(state.crm_create("Leads", {"Last_Name": f"L{i}"}, **extra))
    return made


async def emitted(rig: Rig) -> list[Version]:
    return [of_event(e) for e in await reconciled(rig)]


async def run(rig: Rig, watch: int) -> RunReport:
    report = await rig.runtime.reconciler.run_watch(watch, due=False)
    assert report.outcome == "ok", report
    return report


# -- same-second ties -------------------------------------------------------------------


async def test_same_second_ties_across_pages_and_runs(database_url: str, sandbox: RunningSandbox
                                                      ) -> None:  # fmt: skip
    """450 leads in one second, read in three pages of 200, half of them created after a
    run already put its watermark on that very second. Naive cursors lose the later half:
    `> watermark` and `watermark + 1 s` (Airbyte, hotglue: a.2 #1) skip the second, and
    stopping the walk at the first row at the checkpoint reads one page only."""
    state = sandbox.state
    # No grace and no settle: the watermark lands on the burst's second, the worst case.
    async with crm_rig(database_url, sandbox, reconcile_grace_seconds=0,
                       reconcile_settle_seconds=0) as (rig, watch):  # fmt: skip
        with dropping(state):
            first = leads(state, 250)
        report = await run(rig, watch)
        assert report.emitted == {"missed": 250}
        cursor = await rig.runtime.watches.get(watch)
        assert cursor.watermark == sandbox_now(state)  # the burst's second
        assert set(cursor.ids_at_watermark) == set(first)
        with dropping(state):
            later = leads(state, 200)  # the same second, after the run
        report = await run(rig, watch)
        assert report.emitted == {"missed": 200}, report
        state.clock.advance(1)
        assert (await run(rig, watch)).emitted == {}
        got = await emitted(rig)
        assert sorted(v.record_id for v in got) == sorted(first + later)  # each exactly once


# -- late visibility --------------------------------------------------------------------


async def test_changes_visible_late_are_read_by_the_overlap(database_url: str,
                                                           sandbox: RunningSandbox) -> None:  # fmt: skip
    """Leads that reach the list API 200 s after their Modified_Time (C15): the run in
    between does not see them and moves its watermark past them. A cursor that reads from
    its watermark (no overlap: Activepieces, a.2 #2) never sees them; ours re-reads five
    minutes below it."""
    state = sandbox.state
    async with crm_rig(database_url, sandbox) as (rig, watch):
        seen = leads(state, 5)  # announced: nothing pending holds the watermark back
        await state.flush()
        with dropping(state):
            late = leads(state, 5, visible_after=200)
        created = sandbox_now(state)
        state.clock.advance(120)
        await run(rig, watch)
        moved = await rig.runtime.watches.get(watch)
        assert moved.watermark is not None and moved.watermark > created  # past the late ones
        state.clock.advance(15 * 60)
        report = await run(rig, watch)
        assert report.emitted == {"missed": 5}
        assert sorted(v.record_id for v in await emitted(rig)) == sorted(late)
        assert not set(seen) & {v.record_id for v in await emitted(rig)}


# -- edits during a walk ----------------------------------------------------------------


async def test_edits_during_a_walk_skip_nothing(database_url: str,
                                                sandbox: RunningSandbox) -> None:  # fmt: skip
    """While the run pages through 650 leads newest first, records on pages not yet read
    and on the page just read are edited. Newest-first, an edit moves a record above the
    reading position, so no other row slips into a page already read; oldest-first with
    page numbers (Nango's `leads.ts`, a.1) the rows after an edited one move up a page and
    one is skipped for good. Every untouched lead, and every edited one as it is now, must
    be emitted once."""
    state = sandbox.state
    async with crm_rig(database_url, sandbox) as (rig, watch):
        with dropping(state):
            ids = leads(state, 650, per_second=10)
        state.clock.advance(15 * 60)
        newest_first = sorted(ids, key=int, reverse=True)  # one second holds 10, by id
        unread = newest_first[450:460]  # on page 3, edited after page 1 was served
        read = newest_first[100:105]  # on page 1, edited after page 2 was served
        pages: list[PageServed] = []

        def edit(served: PageServed) -> None:
            pages.append(served)
            batch = {1: unread, 2: read}.get(len(pages), [])
            with dropping(state):
                for record_id in batch:
                    state.crm_update("Leads", record_id, {"Description": "edited mid-walk"})

        before = visible(state) - announced(state)
        remove = state.on_page(edit)
        try:
            first = await run(rig, watch)
        finally:
            remove()
        assert len(pages) >= 4  # page 2 re-read the row the edits pushed down
        assert first.emitted == {"missed": 650 - len(unread)}
        state.clock.advance(15 * 60)
        second = await run(rig, watch)
        assert second.emitted == {"missed": len(unread) + len(read)}
        after = visible(state) - announced(state)
        # Page 1's old versions were read before their edit: a poll saw them, so they count.
        stale_unread = {v for v in before if v.record_id in unread}
        assert sorted(await emitted(rig)) == sorted((before - stale_unread) | after)


async def test_deletions_during_a_walk_skip_nothing(database_url: str,
                                                    sandbox: RunningSandbox) -> None:  # fmt: skip
    """Five leads on page 1 are deleted right after it is served. Pages are offsets into
    the current order, so the five rows after page 1 move up into it and page 2 starts
    five rows late: the walk skips them. One `/deleted` call after a walk of several pages
    sees deletions made during it, and the cursor stays at the first row of the pages
    read after them, so the next run reads the skipped rows. Without it they were lost
    for good, though nothing about them changed."""
    state = sandbox.state
    async with crm_rig(database_url, sandbox) as (rig, watch):
        with dropping(state):
            ids = leads(state, 650, per_second=10)
        state.clock.advance(15 * 60)
        newest_first = sorted(ids, key=int, reverse=True)
        gone = newest_first[10:15]
        skipped = newest_first[200:205]  # moved up into page 1, after it was read

        def delete(served: PageServed) -> None:
            if served.page == 1:
                with dropping(state):
                    for record_id in gone:
                        state.crm_delete("Leads", record_id)

        remove = state.on_page(delete)
        try:
            first = await run(rig, watch)
        finally:
            remove()
        assert first.emitted == {"missed": 650 - len(skipped)}  # gone: read before deleted
        assert not set(skipped) & {v.record_id for v in await emitted(rig)}
        held = await rig.runtime.watches.get(watch)
        # Every page came in the deletions' second (the clock stands still), so the cursor
        # stays at the first row of the last page: the lowest such row, to be safe.
        last_page = [r for r in newest_first if r not in gone][600]
        assert held.watermark == state.orgs["acme"].crm_records["Leads"][last_page].modified
        state.clock.advance(15 * 60)
        second = await run(rig, watch)  # the skipped rows, and the deletions (past grace)
        assert second.emitted == {"missed": len(skipped) + len(gone)}
        got = await emitted(rig)
        assert sorted(v.record_id for v in got if not v.deleted) == sorted(ids)
        assert sorted(v.record_id for v in got if v.deleted) == sorted(gone)


# -- expired page tokens ----------------------------------------------------------------


async def test_expired_page_tokens_restart_the_walk(database_url: str,
                                                     sandbox: RunningSandbox) -> None:  # fmt: skip
    """Past 2,000 records a walk pages by `page_token` (C4). A token expiring mid-walk (400
    EXPIRED_VALUE, C5) starts the walk over at page 1 (Activepieces' rule) and loses
    nothing; tokens that never stop expiring fail the run and keep the cursor, so the next
    run still reads everything. Treating the 400 as the end of the list, and advancing the
    cursor anyway, loses every page not read."""
    state = sandbox.state
    async with crm_rig(database_url, sandbox) as (rig, watch):
        with dropping(state):
            ids = leads(state, 2100, per_second=300)
        state.clock.advance(15 * 60)

        def expire_once(served: PageServed) -> None:
            if served.page == 10 and not state.count(LIST, status=400):
                state.expire_page_tokens()  # the token for page 11, just handed out

        remove = state.on_page(expire_once)
        try:
            report = await run(rig, watch)
        finally:
            remove()
        assert report.emitted == {"missed": 2100}
        assert state.count(LIST, status=400) == 1
        assert state.count(LIST, status=200) == 10 + 11 + 21  # 10 pages, all 11, ids=

        with dropping(state):
            more = leads(state, 2050, per_second=1000)
        state.clock.advance(15 * 60)
        before = await rig.runtime.watches.get(watch)
        remove = state.on_page(lambda served: state.expire_page_tokens())
        try:
            failed = await rig.runtime.reconciler.run_watch(watch, due=False)
        finally:
            remove()
        assert failed.outcome == "failed" and "EXPIRED_VALUE" in (failed.error or "")
        after = await rig.runtime.watches.get(watch)
        assert after.watermark == before.watermark and after.failures == 1
        assert (await run(rig, watch)).emitted == {"missed": 2050}
        assert sorted(v.record_id for v in await emitted(rig)) == sorted(ids + more)


# -- idle modules -----------------------------------------------------------------------


async def test_idle_modules_cost_one_call_a_run(database_url: str,
                                               sandbox: RunningSandbox) -> None:  # fmt: skip
    """A module with 450 old records and nothing new answers 304 to `If-Modified-Since`: one
    call (one credit) per idle run, and a module that never had a record likewise. A
    poller that lists everything each run pays three pages a run for Leads."""
    state = sandbox.state
    async with crm_rig(database_url, sandbox, ("Leads.all", "Deals.all")) as (rig, watch):
        deals = await watch_id(rig.runtime, "Deals")
        with dropping(state):
            leads(state, 450, per_second=100)
        state.clock.advance(15 * 60)
        assert (await run(rig, watch)).emitted == {"missed": 450}
        await run(rig, deals)
        idle_304 = state.count(LIST, status=304)
        for _ in range(3):
            state.clock.advance(15 * 60)  # within the hour: deletions are not due
            calls = state.count(LIST) + state.count(f"{LIST}/deleted")
            for one in (watch, deals):
                report = await run(rig, one)
                assert (report.calls, report.credits, report.emitted) == (1, 1, {})
            assert state.count(LIST) + state.count(f"{LIST}/deleted") - calls == 2
        assert state.count(LIST, status=304) - idle_304 == 6
        assert len(await emitted(rig)) == 450


# -- 429 without Retry-After ------------------------------------------------------------


async def test_429_without_retry_after_backs_off_and_loses_nothing(
    database_url: str, sandbox: RunningSandbox
) -> None:
    """Zoho answers 429 with no Retry-After (zoho.md §6). Mid-walk on CRM and on a Books
    listing: the same page is asked again after a growing, jittered pause (at least
    0.5 s, then 1 s), and nothing is lost. Treating the 429 as an empty page loses the
    rest of the walk; retrying at once hammers a throttled org."""
    state = sandbox.state
    async with crm_rig(database_url, sandbox) as (rig, watch):
        await link_books_source(rig, ["invoices"])
        invoices = await rig.runtime.watches.add("acme", "books", "invoices")
        state.books_create("invoices", {"total": 0})  # delivered: a rule covers invoices
        await state.flush()
        with dropping(state):
            ids = leads(state, 450)
            bills = [state.books_create("invoices", {"total": i}) for i in range(5)]
        state.clock.advance(15 * 60)

        def throttle_after_first(served: PageServed) -> None:
            if served.page == 1:
                state.throttle(2)

        remove = state.on_page(throttle_after_first)
        try:
            began = time.monotonic()
            report = await run(rig, watch)
            crm_pause = time.monotonic() - began
        finally:
            remove()
        assert report.emitted == {"missed": 450}
        assert state.count(LIST, status=429) == 2
        assert crm_pause >= 1.5  # 0.5-1 s, then 1-2 s
        state.throttle(1, product="books")
        began = time.monotonic()
        books = await run(rig, invoices.id)
        assert time.monotonic() - began >= 0.5
        assert books.emitted == {"missed": 5}
        assert state.count("GET /books/v3/invoices", status=429) == 1
        got = {v.record_id for v in await emitted(rig)}
        assert got == set(ids) | set(bills)


# -- a skewed Date ----------------------------------------------------------------------


@pytest.mark.parametrize("skew", [120, -120])
async def test_the_cursor_and_the_grace_follow_zohos_date(
    database_url: str, sandbox: RunningSandbox, skew: int
) -> None:
    """Zoho's `Date` two minutes ahead of (or behind) the clock the records and the bridge
    share. The watermark is Zoho's Date minus settle, and the grace period is measured on
    Zoho's clock: a version is pending until Zoho's Date is 10 minutes past it, whatever
    our clock says. A poller reading its own clock would emit two minutes early (or late)
    and, with Zoho ahead by more than settle plus overlap, skip records for good."""
    state = sandbox.state
    state.date_skew = skew
    async with crm_rig(database_url, sandbox) as (rig, watch):
        with dropping(state):
            ids = leads(state, 20)
        created = sandbox_now(state)
        state.clock.advance(9.5 * 60 - skew)  # Zoho's clock: 9.5 min after the change
        early = await run(rig, watch)
        assert (early.emitted, early.pending) == ({}, 20)
        held = await rig.runtime.watches.get(watch)
        # The waiting versions are carried by the watch, checked again next run; the
        # cursor follows Zoho's Date regardless (it no longer waits for them).
        assert sorted(p["id"] for p in held.pending) == sorted(ids)
        assert {p["t"] for p in held.pending} == {created.isoformat()}
        assert held.last_zoho_date == sandbox_now(state) + timedelta(seconds=skew)
        assert held.watermark == held.last_zoho_date - timedelta(seconds=60)
        state.clock.advance(60)  # 10.5 min by Zoho's clock
        report = await run(rig, watch)
        assert report.emitted == {"missed": 20}
        moved = await rig.runtime.watches.get(watch)
        zoho_date = sandbox_now(state) + timedelta(seconds=skew)
        assert moved.watermark == zoho_date - timedelta(seconds=60)  # Zoho's Date - settle
        with dropping(state):
            more = leads(state, 30)
        state.clock.advance(15 * 60)
        assert (await run(rig, watch)).emitted == {"missed": 30}
        assert sorted(v.record_id for v in await emitted(rig)) == sorted(ids + more)


@pytest.mark.parametrize("ahead", [3600, -3600])
async def test_a_bridge_clock_an_hour_off_loses_nothing(
    database_url: str, sandbox: RunningSandbox, ahead: int
) -> None:
    """The bridge's own clock an hour ahead of Zoho's (or behind it). The cursor is read
    and moved by Zoho's clock only, and a new watch's starting point too: changes made at
    Zoho after the watch was created are emitted, and the watermark is Zoho's Date minus
    settle. A poller trusting its own clock skips an hour of changes when it runs ahead
    (its start, or its watermark, lies in Zoho's future)."""
    state = sandbox.state
    async with bridge_rig(database_url, sandbox, clock_skew=ahead) as rig:
        watch = (await rig.runtime.watches.add("acme", "crm", "Leads")).id
        made = []
        for _ in range(3):
            state.clock.advance(5)
            made += leads(state, 20)
            state.clock.advance(15 * 60)
            report = await run(rig, watch)
            assert sum(report.emitted.values()) == 20, report
            moved = await rig.runtime.watches.get(watch)
            assert moved.watermark == sandbox_now(state) - timedelta(seconds=60)
        assert sorted(v.record_id for v in await emitted(rig)) == sorted(made)


# -- converted leads --------------------------------------------------------------------


async def test_a_converted_lead_is_an_update_not_a_delete(database_url: str,
                                                         sandbox: RunningSandbox) -> None:  # fmt: skip
    """Converting a lead hides it from the default Leads list (C8) and moves its
    Modified_Time. Its dropped callback is reported as an update of the lead, with
    `Converted__s`; no deletion is made up. A poller on the default list never sees it
    (Airbyte#39398), and one diffing the list takes it for a deletion."""
    state = sandbox.state
    async with crm_rig(database_url, sandbox) as (rig, watch):
        lead, told = leads(state, 2)
        await state.flush()
        state.clock.advance(5)
        with dropping(state):
            contact = state.crm_convert(lead)
        state.crm_convert(told)  # its callback arrives: nothing to report
        await state.flush()
        state.clock.advance(61 * 60)
        report = await run(rig, watch)
        assert report.emitted == {"missed": 1}
        assert state.count("GET /crm/v8/{module}/deleted") == 1
        (event,) = await reconciled(rig)
        assert (event["record_id"], event["operation"]) == (lead, "updated")
        assert event["data"].get("Converted__s") is True
        assert contact not in {e["record_id"] for e in await reconciled(rig)}


# -- duplicate Books rows ---------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["at_or_after", "equal"])
async def test_duplicate_books_rows_are_one_version(
    database_url: str, sandbox: RunningSandbox, behaviour: str
) -> None:
    """Books lists every third row twice (B6), across page boundaries too, under the
    `filter` strategy (at or after) and the `sorted` one (filter means equal). Each version
    is emitted once and counted once, and the duplicates do not make the watch give up
    its strategy. A poller keying events by listing row, or counting rows, doubles them."""
    state = sandbox.state
    state.books_duplicate_every = 3
    state.books_entity_settings("invoices", filter=behaviour)
    async with bridge_rig(database_url, sandbox, connection=BOOKS_LIMITS) as rig:
        await link_books_source(rig, ["invoices"])
        # The records as listed: 450 single fetches would not fit the frozen minute.
        options = {"full_records": False}
        watch = (await rig.runtime.watches.add("acme", "books", "invoices", options=options)).id
        ids = [state.books_create("invoices", {"total": i}) for i in range(3)]
        await state.flush()  # a few announced, so the probe and review have evidence
        state.clock.advance(2)
        with dropping(state):
            for _second in range(3):
                ids += [state.books_create("invoices", {"total": i}) for i in range(150)]
                state.clock.advance(1)
        state.clock.advance(30 * 60)
        report = await run(rig, watch)
        assert report.emitted == {"missed": 450} and report.versions == 453
        assert report.strategy_change is None
        strategy = (await rig.runtime.watches.get(watch)).strategy
        assert strategy == ("filter" if behaviour == "at_or_after" else "sorted"), (
            await rig.runtime.watches.get(watch)
        ).strategy_reason
        today = next(v for v in await rig.runtime.watches.views() if v["id"] == watch)["today"]
        assert today["versions"] == 453
        assert sorted(v.record_id for v in await emitted(rig)) == sorted(ids[3:])


# -- what last_modified_time means ------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["equal", "ignored"])
@pytest.mark.parametrize("sortable", [True, False])
async def test_the_probe_ends_on_a_safe_strategy(
    database_url: str, sandbox: RunningSandbox, behaviour: str, sortable: bool
) -> None:
    """A Books entity whose `last_modified_time` means "equal" (hotglue's journals, B2) or
    is ignored (B3), sortable by `last_modified_time` or not (B4): the probe picks `sorted`
    or `scan`, never `filter`, and every dropped version comes back. Trusting the filter
    as "at or after" loses every edit but those at the exact second sent."""
    state = sandbox.state
    state.books_entity_settings("contacts", filter=behaviour, sortable=sortable)
    async with bridge_rig(database_url, sandbox, connection=BOOKS_LIMITS) as rig:
        await link_books_source(rig, ["contacts"])
        watch = (await rig.runtime.watches.add("acme", "books", "contacts")).id
        ids = []
        for second in range(6):  # history for the probe: several distinct times
            ids.append(state.books_create("contacts", {"contact_name": f"C{second}"}))
            state.clock.advance(7)
        await state.flush()
        state.clock.advance(20 * 60)
        await run(rig, watch)
        with dropping(state):
            for record_id in ids[:4]:
                state.books_update("contacts", record_id, {"notes": "changed"})
                state.clock.advance(3)
            fresh = state.books_create("contacts", {"contact_name": "new"})
        state.clock.advance(20 * 60)
        report = await run(rig, watch)
        assert report.emitted == {"missed": 5}
        chosen = await rig.runtime.watches.get(watch)
        assert chosen.strategy == ("sorted" if sortable else "scan"), chosen.strategy_reason
        assert sorted(v.record_id for v in await emitted(rig)) == sorted([*ids[:4], fresh])


@pytest.mark.parametrize("behaviour", ["equal", "ignored"])
async def test_a_wrong_filter_is_caught_by_the_review_and_loses_nothing(
    database_url: str, sandbox: RunningSandbox, behaviour: str
) -> None:
    """An operator set `filter` on an entity whose filter means "equal" or is ignored. A
    run sees it (announced versions missing, or rows older than the bound), moves to
    `sorted` and keeps its cursor, so the next run reads the span again; nothing the bad
    listing hid is lost. Advancing the cursor after a bad listing loses those versions."""
    state = sandbox.state
    state.books_entity_settings("contacts", filter=behaviour)
    async with bridge_rig(database_url, sandbox, connection=BOOKS_LIMITS) as rig:
        await link_books_source(rig, ["contacts"])
        watch = (await rig.runtime.watches.add("acme", "books", "contacts", strategy="filter")).id
        told = [state.books_create("contacts", {"contact_name": f"T{i}"}) for i in range(3)]
        await state.flush()
        state.clock.advance(20 * 60)
        switched = []
        lost: list[str] = []
        for step in range(3):
            if step == 1:
                with dropping(state):
                    lost += [state.books_create("contacts", {"n": i}) for i in range(4)]
                state.books_update("contacts", told[0], {"notes": "told"})
                await state.flush()
                state.clock.advance(20 * 60)
            before = await rig.runtime.watches.get(watch)
            report = await run(rig, watch)
            after = await rig.runtime.watches.get(watch)
            if report.strategy_change is not None:
                switched.append(report.strategy_change)
                assert after.watermark == before.watermark  # the span is read again
        assert len(switched) == 1, switched
        assert after.strategy == "sorted", after.strategy_reason
        assert sorted(v.record_id for v in await emitted(rig)) == sorted(lost)


@pytest.mark.parametrize("behaviour", ["at_or_after", "equal"])
async def test_books_deletions_do_not_demote_the_strategy(
    database_url: str, sandbox: RunningSandbox, behaviour: str
) -> None:
    """Announced invoices deleted since, with their delete webhook delivered (the bridge
    knows) or dropped (Books answers 404 when asked), are rightly missing from every
    listing. The strategy review must not take them for a listing fault: it used to move
    the watch from `filter` to `sorted` and on to `scan`, a full listing every run."""
    state = sandbox.state
    state.books_entity_settings("invoices", filter=behaviour)
    async with bridge_rig(database_url, sandbox, connection=BOOKS_LIMITS) as rig:
        await link_books_source(rig, ["invoices"])
        watch = (await rig.runtime.watches.add("acme", "books", "invoices")).id
        ids = []
        for i in range(8):
            ids.append(state.books_create("invoices", {"total": i}))
            state.clock.advance(2)
        await state.flush()
        state.clock.advance(11 * 60)
        await run(rig, watch)
        chosen = (await rig.runtime.watches.get(watch)).strategy
        assert chosen == ("filter" if behaviour == "at_or_after" else "sorted")
        for record_id in ids[:3]:
            state.books_delete("invoices", record_id)  # delete webhook delivered
        with dropping(state):
            for record_id in ids[3:6]:
                state.books_delete("invoices", record_id)
        await state.flush()
        for _ in range(2):
            state.clock.advance(5 * 60)  # the deleted versions are inside the read window
            report = await run(rig, watch)
            assert report.strategy_change is None, report.strategy_change
        assert (await rig.runtime.watches.get(watch)).strategy == chosen
        assert state.count("GET /books/v3/invoices/{id}") == 3  # the unknown ones, once
