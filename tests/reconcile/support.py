"""What the reconciliation acceptance tests compare: the versions the sandbox Zoho holds and
which of them a callback announced, against what the bridge emitted, counted and exported.

A *version* is one state of one record as a poll can see it: (product, module as events
name it, record id, Zoho time, deleted or not). Helpers read the sandbox's own state, never
the bridge's, so an expectation cannot inherit a bug of the code under test.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.domain.books_entities import books_entity
from bridge.runtime import Runtime
from bridge.sandbox.model import Change, Delivery
from bridge.sandbox.state import SandboxState
from bridge.services.reconciler import RunReport
from tests.channel_rig import Rig

TOKEN = "books-source-token-0123456789"
BOOKS_SOURCE = "acme-books"
CAUSES = ("missed", "gap", "not_subscribed", "delivery_failed")


@dataclass(frozen=True, order=True)
class Version:
    product: str
    module: str  # CRM API name, or the Books webhook key (`invoice`)
    record_id: str
    at: datetime
    deleted: bool = False


def _utc(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)


def of_change(change: Change) -> Version:
    return Version(
        change.product, change.module, change.record_id, change.modified.astimezone(UTC),
        change.operation == "delete",
    )  # fmt: skip


def of_delivery(delivery: Delivery) -> Version:
    """The version a delivered callback's event stands for: a Books deletion's webhook
    carries the record as it was, so its time is the record's `last_modified_time`."""
    assert delivery.change is not None
    version = of_change(delivery.change)
    if delivery.kind == "books" and version.deleted:
        (record,) = delivery.payload.values()
        at = datetime.strptime(record["last_modified_time"], "%Y-%m-%dT%H:%M:%S%z")
        return Version(version.product, version.module, version.record_id,
                       at.astimezone(UTC), True)  # fmt: skip
    return version


def visible(state: SandboxState, org: str = "acme") -> set[Version]:
    """Every version a complete poll could see now: each CRM record as the list API shows
    it (late-visible changes not yet), each CRM deletion, each live Books record. Books
    deletions are invisible to a poll (no deleted-records API, B7)."""
    found = state.orgs[org]
    now = state.clock.now()
    seen: set[Version] = set()
    for module, records in found.crm_records.items():
        for record in records.values():
            view = record.view(now)
            if view is not None:
                seen.add(Version("crm", module, view.id, view.modified.astimezone(UTC)))
    for module, rows in found.crm_deleted.items():
        for row in rows:
            seen.add(Version("crm", module, row["id"], _utc(row["deleted_time"]), True))
    for path, books in found.books_records.items():
        entity = books_entity(path)
        assert entity is not None
        for row in books.values():
            at = datetime.strptime(row["last_modified_time"], "%Y-%m-%dT%H:%M:%S%z")
            seen.add(Version("books", entity.key, row[entity.id_field], at.astimezone(UTC)))
    return seen


def announced(state: SandboxState) -> set[Version]:
    """The versions at least one callback or webhook delivered (2xx from the bridge)."""
    return {of_change(d.change) for d in state.delivered() if d.change is not None}


def dropped(state: SandboxState) -> set[Version]:
    """The versions whose every callback the sandbox dropped on purpose."""
    return {of_change(c) for c in state.dropped_versions()}


def of_envelope(envelope: dict[str, Any]) -> Version:
    product = "crm" if envelope["type"].startswith("com.zoho.crm.") else "books"
    return Version(
        product, envelope["zohomodule"], envelope["zohorecordid"],
        _utc(envelope["time"]).replace(microsecond=0), envelope["zohooperation"] == "deleted",
    )  # fmt: skip


def of_event(event: dict[str, Any]) -> Version:
    """An event as `/admin/events` shows it (webhook CRM times floored to the second)."""
    return Version(
        event["product"], event["module"], event["record_id"],
        _utc(event["occurred_at"]).replace(microsecond=0), event["operation"] == "deleted",
    )  # fmt: skip


async def subscribe(rig: Rig, name: str = "all") -> str:
    """A pull subscription over every event from the start; returns its token."""
    made = await rig.http.post("/admin/subscriptions", json={"name": name, "from_start": True})
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


async def pull_all(rig: Rig, token: str, name: str = "all") -> list[dict[str, Any]]:
    """Every envelope the subscription holds, in seq order (reads without acknowledging)."""
    got: list[dict[str, Any]] = []
    after = 0
    while True:
        answer = await rig.http.get(
            f"/v1/subscriptions/{name}/events",
            params={"after": after, "limit": 1000},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        got.extend(page["items"])
        if len(page["items"]) < 1000:
            return got
        after = page["next"]


async def events(rig: Rig, **filters: str) -> list[dict[str, Any]]:
    """Every stored event matching `filters` (e.g. origin="reconciliation"), oldest first."""
    got: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {**filters, "limit": "1000", **({"cursor": cursor} if cursor else {})}
        answer = await rig.http.get("/admin/events", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        got.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            return sorted(got, key=lambda e: int(e["seq"]))


async def reconciled(rig: Rig) -> list[dict[str, Any]]:
    return await events(rig, origin="reconciliation")


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


async def metric(rig: Rig, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric family at `/metrics`, by their sorted labels."""
    text = (await rig.http.get("/metrics")).text
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match["labels"])))
        found[labels] = float(match["value"])
    return found


async def missed_metric(rig: Rig) -> Counter[tuple[str, str]]:
    """`bridge_reconcile_missed_total` by (module, cause); the registry is per process, so
    tests compare the difference across what they did."""
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in (await metric(rig, "bridge_reconcile_missed_total")).items():
        named = dict(labels)
        counts[(named["module"], named["cause"])] += int(value)
    return counts


def grew(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]]) -> dict[str, int]:
    """What a counter gained, by "module/cause", zeros left out."""
    gained = {f"{m}/{c}": after[(m, c)] - before[(m, c)] for (m, c) in after}
    return {k: v for k, v in gained.items() if v}


async def watch_views(rig: Rig) -> list[dict[str, Any]]:
    """The watches' status from the admin API (`GET /admin/reconciliation`)."""
    answer = await rig.http.get("/admin/reconciliation")
    assert answer.status_code == 200, answer.text
    views: list[dict[str, Any]] = answer.json()["watches"]
    return views


def misses(view: dict[str, Any]) -> dict[str, int]:
    """A watch view's misses by cause over the days it lists, zeros left out."""
    total: Counter[str] = Counter()
    for day in view["misses"]:
        for cause in CAUSES:
            total[cause] += int(day.get(cause, 0))
    return {c: n for c, n in total.items() if n}


async def watch_id(runtime: Runtime, module: str) -> int:
    for watch in await runtime.watches.all():
        if watch.module == module:
            return watch.id
    raise AssertionError(f"no watch on {module}")


async def run_all(runtime: Runtime) -> list[RunReport]:
    """Run every active watch once, now, one after the other."""
    reports = []
    for watch in await runtime.watches.all():
        report = await runtime.reconciler.run_watch(watch.id, due=False)
        assert report.outcome == "ok", report
        reports.append(report)
    return reports


async def link_books_source(rig: Rig, entities: Iterable[str]) -> None:
    """A Books source linked to the connection, with the org's webhooks for `entities`
    pointing at it."""
    created = await rig.http.post("/admin/sources", json={"name": BOOKS_SOURCE, "tokens": [TOKEN]})
    assert created.status_code == 201, created.text
    linked = await rig.http.patch(f"/admin/sources/{BOOKS_SOURCE}", json={"connection": "acme"})
    assert linked.status_code == 200, linked.text
    url = f"{rig.url}/hooks/books/{BOOKS_SOURCE}?token={TOKEN}"
    for entity in entities:
        # Two workflow rules, as an operator sets them up: created or edited, and deleted
        # (the payload does not say which action fired it; the URL does).
        rig.state.books_webhook(entity, url, actions=("insert", "update"))
        rig.state.books_webhook(entity, f"{url}&event=deleted", actions=("delete",))


@contextmanager
def dropping(state: SandboxState) -> Iterator[None]:
    """Every callback of the changes made inside is dropped (and the sandbox says so)."""
    before, state.drop_rate = state.drop_rate, 1.0
    try:
        yield
    finally:
        state.drop_rate = before


async def add_watch(rig: Rig, product: str, module: str, **extra: Any) -> int:
    """A watch through the admin API; its id."""
    added = await rig.http.post(
        "/admin/reconciliation/watches",
        json={"connection": "acme", "product": product, "module": module, **extra},
    )
    assert added.status_code == 201, added.text
    watch: int = added.json()["id"]
    return watch
