"""Reconciliation at volume, end to end over real HTTP: 3,000+ CRM changes (Leads and Deals:
creates, updates and deletes, bursts of hundreds in one second, records changed several
times) and 1,000+ Books changes (invoices, contacts, customer payments through a source
linked to the connection), a quarter of every callback dropped at random, in three rounds,
each followed by reconciliation.

It catches, at once: a cursor that loses same-second ties or page boundaries (bursts of
400 in one second, pages of 200), a poller that emits announced versions again or
duplicates re-read ones (overlaps between rounds), one that misses deletions or mistakes
a listing for them, a Books strategy that misreads a filter (one entity per behaviour:
at or after, equal, ignored and unsortable), and a `missed` count that is not exactly the
versions whose callbacks were dropped.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from bridge.sandbox import RunningSandbox
from bridge.sandbox.state import SandboxState
from tests.channel_rig import Rig, bridge_rig, frozen_sandbox
from tests.reconcile.support import (
    Version,
    announced,
    dropped,
    grew,
    link_books_source,
    missed_metric,
    misses,
    of_delivery,
    of_envelope,
    pull_all,
    run_all,
    subscribe,
    visible,
    watch_views,
)

BOOKS = {"invoices": "invoice", "contacts": "contact", "customerpayments": "payment"}
ROUNDS = 3
# Raised so budgets do not make the test crawl, not to hide a fault: with the frozen clock
# no minute ever passes, so a governor that reserves 20 % of 60 Books calls/min (the
# default) would wait out its window for real. The org (the sandbox's Zoho) and the
# connection (the bridge's governor) both allow 10,000 Books calls a minute and 100,000 a
# day, and 100,000 CRM credits a day. tests/reconcile/test_budgets.py proves the governor.
LIMITS = {"books_per_minute": 10_000, "books_daily": 100_000, "crm_daily_credits": 100_000}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        org = running.state.orgs["acme"]
        org.books_per_minute, org.books_daily = 10_000, 100_000
        yield running


@pytest.fixture
async def rig(database_url: str, sandbox: RunningSandbox) -> AsyncIterator[Rig]:
    async with bridge_rig(database_url, sandbox, connection={"limits": LIMITS}) as running:
        yield running


class Changes:
    """Makes seeded random changes, never two to one record within 2 s (a CRM callback
    within ±1 s of a version announces it by design: reconcile_match)."""

    def __init__(self, state: SandboxState, seed: int) -> None:
        self.state = state
        self.rng = random.Random(seed)
        self.last: dict[tuple[str, str], float] = {}  # (module, id) -> time of last change
        self.crm = Counter[str]()
        self.books = Counter[str]()

    def _touch(self, module: str, record_id: str) -> None:
        self.last[(module, record_id)] = self.state.clock.now()

    def _eligible(self, module: str, n: int) -> list[str]:
        now = self.state.clock.now()
        ids = [i for (m, i), at in self.last.items() if m == module and now - at >= 2]
        return self.rng.sample(sorted(ids), min(n, len(ids)))

    def crm_create(self, module: str, n: int) -> None:
        for i in range(n):
            record_id = self.state.crm_create(module, {"Last_Name": f"{module} {i}"})
            self._touch(module, record_id)
            self.crm["create"] += 1

    def crm_change(self, module: str, n: int, deletes: float) -> None:
        for record_id in self._eligible(module, n):
            if self.rng.random() < deletes:
                self.state.crm_delete(module, record_id)
                del self.last[(module, record_id)]
                self.crm["delete"] += 1
            else:
                self.state.crm_update(module, record_id, {"Description": str(self.rng.random())})
                self._touch(module, record_id)
                self.crm["update"] += 1

    def books_create(self, entity: str, n: int) -> None:
        for i in range(n):
            record_id = self.state.books_create(entity, {"reference_number": f"R-{i}"})
            self._touch(entity, record_id)
            self.books["create"] += 1

    def books_change(self, entity: str, n: int, deletes: float) -> None:
        for record_id in self._eligible(entity, n):
            if self.rng.random() < deletes:
                self.state.books_delete(entity, record_id)
                del self.last[(entity, record_id)]
                self.books["delete"] += 1
            else:
                self.state.books_update(entity, record_id, {"notes": str(self.rng.random())})
                self._touch(entity, record_id)
                self.books["update"] += 1

    def round(self) -> None:
        """About 1,000 CRM and 350 Books changes over 16 seconds of Zoho time."""
        clock = self.state.clock
        self.crm_create("Leads", 250)  # a burst: 400 records in one second
        self.crm_create("Deals", 150)
        clock.advance(1)
        for entity, n in zip(BOOKS, (60, 50, 40), strict=True):
            self.books_create(entity, n)
        for step in range(14):
            clock.advance(1 if step % 3 else 2)
            burst = 150 if step == 7 else 22  # a burst of updates in one second
            self.crm_change("Leads", burst, deletes=0.15)
            self.crm_change("Deals", burst // 2 + 8, deletes=0.15)
            for entity in BOOKS:
                self.books_change(entity, 5, deletes=0.1)
            self.crm_create("Leads", 3)
            self.books_create("invoices", 1)


async def test_thousands_of_changes_a_quarter_dropped_each_visible_version_once(
    rig: Rig,
) -> None:
    started = time.monotonic()
    state = rig.state
    await rig.create(["Leads.all", "Deals.all"])  # automatic watches on Leads and Deals
    await link_books_source(rig, BOOKS)
    # One entity per filter behaviour (B2, B3): the probe must end on a safe strategy.
    state.books_entity_settings("contacts", filter="equal")
    state.books_entity_settings("customerpayments", filter="ignored", sortable=False)
    for entity in BOOKS:
        added = await rig.runtime.watches.add("acme", "books", entity)
        assert added.id
    token = await subscribe(rig)
    before = await missed_metric(rig)
    state.rng = random.Random(20260611)
    state.drop_rate = 0.25
    changes = Changes(state, seed=7)

    expected: set[Version] = set()  # what reconciliation must emit
    reports = []
    for _ in range(ROUNDS):
        changes.round()
        await state.flush()
        rig.hours(0.25)  # past the grace period (10 min) and the settle time (60 s)
        # What a poll sees now and no delivered callback announced: exactly these.
        expected |= visible(state) - announced(state)
        reports += await run_all(rig.runtime)
    # CRM deletions are listed hourly (BRIDGE_RECONCILE_DELETES_MINUTES): an hour on, the
    # deletions of the later rounds are in too.
    rig.hours(1)
    expected |= visible(state) - announced(state)
    reports += await run_all(rig.runtime)
    state.drop_rate = 0.0
    assert not state.delivered("failed") and not state.delivered("pending")
    assert sum(changes.crm.values()) >= 3000 and sum(changes.books.values()) >= 1000

    envelopes = await pull_all(rig, token)
    webhooks = [of_envelope(e) for e in envelopes if e["zohoorigin"] == "webhook"]
    polled = [of_envelope(e) for e in envelopes if e["zohoorigin"] == "reconciliation"]
    # One event per delivered callback, one per polled unannounced version, nothing else.
    assert Counter(webhooks) == Counter(of_delivery(d) for d in state.delivered())
    assert Counter(polled) == Counter(expected), (
        f"missing {sorted(expected - set(polled))[:5]}, extra {sorted(set(polled) - expected)[:5]}"
    )
    assert not set(polled) & announced(state)  # zero reconciliation events for delivered
    # Every version dropped is either polled or gone from Zoho before any poll saw it.
    lost = dropped(state) & visible(state) - set(polled)
    assert not lost
    assert {e["zohomisscause"] for e in envelopes if e["zohoorigin"] == "reconciliation"} == {
        "missed"
    }

    by_module = Counter(v.module for v in expected)
    views = {v["module"]: v for v in await watch_views(rig)}
    assert {m: misses(views[m]) for m in by_module} == {
        m: {"missed": n} for m, n in by_module.items()
    }
    assert grew(before, await missed_metric(rig)) == {f"{m}/missed": n for m, n in
                                                      by_module.items()}  # fmt: skip
    strategies = {v["module"]: v["strategy"] for v in views.values()}
    assert strategies == {
        "Leads": None, "Deals": None, "invoice": "filter", "contact": "sorted", "payment": "scan"
    }, {m: views[m]["strategy_reason"] for m in views}  # fmt: skip

    # Once more: every version is known now, nothing is emitted again.
    rig.hours(0.25)
    again = await run_all(rig.runtime)
    assert all(r.emitted == {} for r in again)
    assert len(await pull_all(rig, token)) == len(envelopes)

    calls = sum(r.calls for r in reports)
    credits = sum(r.credits for r in reports)
    dropped_n = len(state.dropped_versions())
    print(
        f"\nvolume: crm {dict(changes.crm)} books {dict(changes.books)}; "
        f"callbacks {len(state.deliveries)} dropped {dropped_n}; emitted {len(polled)} "
        f"(by module {dict(by_module)}); webhooks {len(webhooks)}; Zoho calls {calls} "
        f"(CRM credits {credits}); {time.monotonic() - started:.1f} s"
    )
