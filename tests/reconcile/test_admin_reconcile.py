"""The reconciliation admin API over real HTTP, against the sandbox: watches, runs started
with 202 and followed to their end, the overview, bad input, and shutdown mid-run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bridge.sandbox import RunningSandbox
from bridge.web.openapi import build_document
from tests.channel_rig import Rig, bridge_rig, connection_body, frozen_sandbox, sandbox_now

WATCHES = "/admin/reconciliation/watches"
RUNS = "/admin/reconciliation/runs"
WATCH_KEYS = {
    "id", "connection", "product", "module", "status", "automatic", "interval_seconds",
    "strategy", "strategy_reason", "options", "watermark", "lag_seconds", "healthy", "problem",
    "last_run_at", "last_success_at", "next_run_at", "deferred_until", "deferred_reason",
    "failures", "last_error", "today", "misses",
}  # fmt: skip
TODAY_KEYS = {"runs", "failed_runs", "calls", "credits", "versions", "missed", "gap",
              "not_subscribed", "delivery_failed"}  # fmt: skip
RUN_KEYS = {"id", "state", "connection", "module", "since", "until", "dry_run", "counts",
            "error", "created_at", "started_at", "finished_at"}  # fmt: skip


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


@pytest.fixture
async def rig(database_url: str, sandbox: RunningSandbox) -> AsyncIterator[Rig]:
    async with bridge_rig(database_url, sandbox) as running:
        yield running


def iso(rig: Rig, delta: timedelta = timedelta()) -> str:
    return (sandbox_now(rig.state) + delta).isoformat().replace("+00:00", "Z")


async def add_watch(rig: Rig, **body: Any) -> dict[str, Any]:
    answer = await rig.http.post(
        WATCHES, json={"connection": "acme", "product": "crm", "module": "Leads", **body}
    )
    assert answer.status_code == 201, answer.text
    view: dict[str, Any] = answer.json()
    return view


def create_leads(rig: Rig, n: int, org: str | None = None) -> list[str]:
    ids = []
    for i in range(n):
        rig.state.clock.advance(2)
        ids.append(rig.state.crm_create("Leads", {"Last_Name": f"L{i}"}, org=org))
    return ids


async def start_run(rig: Rig, **body: Any) -> str:
    answer = await rig.http.post(RUNS, json=body)
    assert answer.status_code == 202, answer.text
    assert set(answer.json()) == {"id", "state"}
    assert answer.json()["state"] == "queued"
    assert answer.headers["location"] == f"{RUNS}/{answer.json()['id']}"
    run_id: str = answer.json()["id"]
    return run_id


async def finished(rig: Rig, run_id: str, seconds: float = 20.0) -> dict[str, Any]:
    """Poll the run until it is done or failed."""
    view: dict[str, Any] = {}
    for _ in range(int(seconds / 0.05)):
        answer = await rig.http.get(f"{RUNS}/{run_id}")
        assert answer.status_code == 200, answer.text
        view = answer.json()
        if view["state"] in ("done", "failed"):
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"run still {view.get('state')}: {view}")


async def reconciled(rig: Rig) -> list[dict[str, Any]]:
    answer = await rig.http.get("/admin/events", params={"origin": "reconciliation"})
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_crm_watch_lifecycle(rig: Rig) -> None:
    created = await add_watch(rig, interval_seconds=300)
    assert set(created) == WATCH_KEYS
    assert set(created["today"]) == TODAY_KEYS
    assert (created["connection"], created["product"], created["module"]) == ("acme", "crm",
                                                                              "Leads")  # fmt: skip
    assert (created["status"], created["automatic"], created["interval_seconds"]) == (
        "active", False, 300)  # fmt: skip
    watch = f"{WATCHES}/{created['id']}"
    assert (await rig.http.get(watch)).json() == created
    assert (await rig.http.get(WATCHES)).json() == {"items": [created]}

    changed = await rig.http.patch(
        watch, json={"interval_seconds": 600, "options": {"full_records": False}}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["interval_seconds"], changed.json()["options"]) == (
        600, {"full_records": False})  # fmt: skip
    paused = await rig.http.post(f"{watch}/pause")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    rig.state.clock.advance(60)
    resumed = await rig.http.post(f"{watch}/resume")
    assert (resumed.status_code, resumed.json()["status"]) == (200, "active")
    assert resumed.json()["next_run_at"] == iso(rig)  # due now: it catches up

    removed = await rig.http.delete(watch)
    assert (removed.status_code, removed.content) == (204, b"")
    assert (await rig.http.get(watch)).status_code == 404
    assert (await rig.http.get(WATCHES)).json() == {"items": []}


async def test_books_watch_strategy_and_the_overview_filters(rig: Rig) -> None:
    books = await add_watch(rig, product="books", module="invoices", strategy="sorted")
    assert (books["module"], books["strategy"], books["strategy_reason"]) == (
        "invoice", "sorted", "set by an operator")  # fmt: skip
    changed = await rig.http.patch(f"{WATCHES}/{books['id']}", json={"strategy": "scan"})
    assert changed.json()["strategy"] == "scan"
    crm = await add_watch(rig, interval_seconds=60)

    overview = (await rig.http.get("/admin/reconciliation")).json()
    assert set(overview) == {"watches", "problems", "runs", "budgets"}
    assert [w["id"] for w in overview["watches"]] == [books["id"], crm["id"]]
    assert (overview["problems"], overview["runs"]) == ([], [])
    for module in ("invoices", "invoice"):
        only = (await rig.http.get("/admin/reconciliation", params={"module": module})).json()
        assert [w["id"] for w in only["watches"]] == [books["id"]], module
    leads = (await rig.http.get(WATCHES, params={"module": "Leads"})).json()["items"]
    assert [w["id"] for w in leads] == [crm["id"]]

    rig.state.clock.advance(600)  # never run: lag beyond three 60 s intervals
    overview = (await rig.http.get("/admin/reconciliation", params={"connection": "acme"})).json()
    assert len(overview["problems"]) == 1
    assert overview["problems"][0].startswith("reconciliation of acme Leads")
    assert [w["healthy"] for w in overview["watches"]] == [True, False]
    none = (await rig.http.get("/admin/reconciliation", params={"module": "invoice"})).json()
    assert none["problems"] == []
    unknown = await rig.http.get("/admin/reconciliation", params={"connection": "nobody"})
    assert (unknown.status_code, unknown.json()["message"]) == (
        404, "no connection named 'nobody'")  # fmt: skip


WATCH_BODIES: list[tuple[dict[str, Any], int, str]] = [
    ({"connection": "nobody"}, 404, "no connection named 'nobody'"),
    ({"product": "desk"}, 400, "product: Input should be 'crm' or 'books'"),
    ({"module": "Le ads"}, 400, "a CRM module is its API name"),
    ({"product": "books", "module": "widgets"}, 400, "unknown Books entity 'widgets'"),
    ({"strategy": "filter"}, 400, "a listing strategy is for Books watches only"),
    ({"product": "books", "strategy": "fast"}, 400, "strategy: Input should be 'filter'"),
    ({"interval_seconds": 10}, 400, "the interval must be from 60 to 604800 seconds"),
    ({"interval_seconds": 10**12}, 400, "the interval must be from 60 to 604800 seconds"),
    ({"interval_seconds": "often"}, 400, "interval_seconds: Input should be a valid integer"),
    ({"options": {"colour": 1}}, 400, "unknown option 'colour'"),
    ({"options": {"full_records": "yes"}}, 400, "option full_records must be a bool"),
    ({"options": []}, 400, "options: Input should be a valid dictionary"),
    ({"dry": True}, 400, "dry: Extra inputs are not permitted"),
    ({"module": None}, 400, "module: Input should be a valid string"),
]  # fmt: skip


async def test_bad_watch_input_is_refused_clearly(rig: Rig) -> None:
    base = {"connection": "acme", "product": "crm", "module": "Leads"}
    for change, status, message in WATCH_BODIES:
        answer = await rig.http.post(WATCHES, json={**base, **change})
        assert (answer.status_code, answer.json()["error"]) == (
            status, "bad_request" if status == 400 else "not_found"), (change, answer.text)  # fmt: skip
        assert message in answer.json()["message"], (change, answer.text)
    missing = await rig.http.post(WATCHES, json={"connection": "acme", "product": "crm"})
    assert (missing.status_code, missing.json()["message"]) == (400, "module: Field required")
    junk = await rig.http.post(WATCHES, content=b"{nope")
    assert (junk.status_code, "not valid JSON" in junk.json()["message"]) == (400, True)
    await add_watch(rig)
    again = await rig.http.post(WATCHES, json=base)
    assert (again.status_code, again.json()["message"]) == (
        409, "acme already has a crm watch on Leads")  # fmt: skip
    books = await add_watch(rig, product="books", module="bills")
    for change in ({"strategy": "best"}, {"interval_seconds": 1}, {"options": {"x": 1}},
                   {"product": "crm"}):  # fmt: skip
        answer = await rig.http.patch(f"{WATCHES}/{books['id']}", json=change)
        assert answer.status_code == 400, (change, answer.text)


@pytest.mark.parametrize(
    "watch_id", ["abc", "0", "-1", "999", "1.5", "99999999999999999999999", "\u0661", "1e3"]
)
async def test_a_bad_or_unknown_watch_id_is_404(rig: Rig, watch_id: str) -> None:
    await add_watch(rig)
    path = f"{WATCHES}/{watch_id}"
    for method, url in (("GET", path), ("PATCH", path), ("DELETE", path),
                        ("POST", f"{path}/pause"), ("POST", f"{path}/resume")):  # fmt: skip
        answer = await rig.http.request(method, url, json={"interval_seconds": 120})
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), (method, url)


async def test_bad_run_input_is_refused_clearly(rig: Rig) -> None:
    nothing = await rig.http.post(RUNS, json={})
    assert (nothing.status_code, nothing.json()["message"]) == (
        400, "no active watch matches; add one with `zoho-bridge reconcile watch add`")  # fmt: skip
    await add_watch(rig)
    hour_ago, now = iso(rig, timedelta(hours=-1)), iso(rig)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"since": "yesterday"}, 400, "since: Input should be a valid datetime"),
        ({"since": "2026-01-01T00:00:00"}, 400, "since: Input should have timezone info"),
        ({"until": now}, 400, "--until needs --since"),
        ({"since": hour_ago, "until": iso(rig, timedelta(hours=-2))}, 400,
         "until must be after since"),
        ({"since": now}, 400, "since must be in the past"),
        ({"since": hour_ago, "until": hour_ago}, 400, "until must be after since"),
        ({"since": iso(rig, timedelta(hours=1))}, 400, "since must be in the past"),
        ({"since": "0001-01-01T00:00:00+05:00"}, 400, "since is out of range"),
        ({"since": "1999-12-31T23:59:59Z"}, 400, "since must be a time between the years"),
        ({"dry_run": True}, 400, "a dry run is a backfill"),
        ({"dryrun": True, "since": hour_ago}, 400, "dryrun: Extra inputs are not permitted"),
        ({"dry_run": "perhaps"}, 400, "dry_run: Input should be a valid boolean"),
        ({"connection": "nobody"}, 404, "no connection named 'nobody'"),
        ({"module": "Deals"}, 400, "no active watch matches"),
    ]  # fmt: skip
    for body, status, message in cases:
        answer = await rig.http.post(RUNS, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert message in answer.json()["message"], (body, answer.text)
    assert (await rig.http.get(RUNS)).json() == {"items": []}  # nothing was queued
    for run_id in ("nope", "01JD3Q6W8M6V7J4K3Z5X2N1B0A", "x" * 500):
        answer = await rig.http.get(f"{RUNS}/{run_id}")
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


async def test_a_run_answers_202_and_is_followed_to_done(rig: Rig) -> None:
    watch = await add_watch(rig)
    ids = create_leads(rig, 5)  # no channel: nothing announced them, nothing could have
    rig.hours(0.25)  # past the grace period

    run_id = await start_run(rig)
    view = await finished(rig, run_id)
    assert set(view) == RUN_KEYS
    assert (view["state"], view["error"], view["dry_run"], view["since"]) == (
        "done", None, False, None)  # fmt: skip
    counts = view["counts"]
    assert {k: counts[k] for k in ("watches", "done", "versions", "emitted", "not_subscribed")} == {
        "watches": 1, "done": 1, "versions": 5, "emitted": 5, "not_subscribed": 5}  # fmt: skip
    assert counts["calls"] >= 1
    assert sorted(e["record_id"] for e in await reconciled(rig)) == sorted(ids)

    listed = (await rig.http.get(RUNS)).json()["items"]
    assert [r["id"] for r in listed] == [run_id]
    overview = (await rig.http.get("/admin/reconciliation")).json()
    assert overview["runs"] == listed
    today = overview["watches"][0]["today"]
    assert (overview["watches"][0]["id"], today["versions"], today["not_subscribed"]) == (
        watch["id"], 5, 5)  # fmt: skip
    assert today["calls"] >= 1
    assert overview["watches"][0]["last_success_at"] is not None


async def test_a_backfill_dry_run_counts_then_the_backfill_emits(rig: Rig) -> None:
    since = iso(rig)
    ids = create_leads(rig, 3)  # before the watch: only a backfill reaches them
    rig.state.clock.advance(60)
    await add_watch(rig)
    rig.hours(0.25)

    dry = await finished(rig, await start_run(rig, since=since, dry_run=True, module="Leads"))
    assert (dry["state"], dry["dry_run"], dry["since"], dry["module"]) == (
        "done", True, since, "Leads")  # fmt: skip
    assert (dry["counts"]["would_emit"], dry["counts"]["would_emit_not_subscribed"]) == (3, 3)
    assert "emitted" not in dry["counts"]
    assert await reconciled(rig) == []

    real = await finished(rig, await start_run(rig, since=since, until=iso(rig)))
    assert (real["state"], real["counts"]["emitted"], real["counts"]["not_subscribed"]) == (
        "done", 3, 3)  # fmt: skip
    assert sorted(e["record_id"] for e in await reconciled(rig)) == sorted(ids)
    again = await finished(rig, await start_run(rig, since=since, connection="acme"))
    assert again["counts"]["emitted"] == 0  # their version keys are taken: nothing doubles


async def test_a_failed_run_says_why(rig: Rig) -> None:
    await add_watch(rig)
    rig.state.orgs["acme"].refresh_tokens.clear()  # the customer revoked the consent
    view = await finished(rig, await start_run(rig, since=iso(rig, timedelta(hours=-1))))
    assert view["state"] == "failed"
    assert "refresh token" in view["error"]
    assert view["finished_at"] is not None


async def test_shutdown_mid_run_queues_it_again(database_url: str, sandbox: RunningSandbox) -> None:
    """A run waiting for the budget when the server stops is queued again (not left
    `running` with no lease, which no replica would ever resume)."""
    sandbox.state.add_org("tight")
    async with bridge_rig(database_url, sandbox) as rig:
        body = {**connection_body(sandbox, "tight"), "limits": {"crm_daily_credits": 1}}
        assert (await rig.http.post("/admin/connections", json=body)).status_code == 201
        await add_watch(rig, connection="tight")
        run_id = await start_run(rig, connection="tight")
        for _ in range(400):
            view = (await rig.http.get(f"{RUNS}/{run_id}")).json()
            if "waiting" in view["counts"]:
                break
            await asyncio.sleep(0.05)
        assert view["state"] == "running"
        assert view["counts"]["waiting"].startswith("budget spent: waiting")
    async with bridge_rig(database_url, sandbox) as again:
        view = (await again.http.get(f"{RUNS}/{run_id}")).json()
        assert (view["state"], view["counts"]["watches"]) == ("queued", 1)
        assert "waiting" not in view["counts"]  # no longer true
        assert view["error"] is None


async def test_linking_a_books_source_to_a_connection(rig: Rig) -> None:
    body = {"name": "acme-books", "tokens": ["books-token-0123456789"]}
    assert (await rig.http.post("/admin/sources", json=body)).status_code == 201
    linked = await rig.http.patch("/admin/sources/acme-books", json={"connection": "acme"})
    assert (linked.status_code, linked.json()["connection"]) == (200, "acme")
    shown = (await rig.http.get("/admin/sources/acme-books")).json()
    assert shown["connection"] == "acme"
    unknown = await rig.http.patch("/admin/sources/acme-books", json={"connection": "nobody"})
    assert (unknown.status_code, unknown.json()["message"]) == (
        404, "no connection named 'nobody'")  # fmt: skip
    unlinked = await rig.http.patch("/admin/sources/acme-books", json={"connection": ""})
    assert (unlinked.status_code, unlinked.json()["connection"]) == (200, None)


def test_every_reconciliation_path_is_in_the_openapi_document() -> None:
    paths = build_document()["paths"]
    expected = {
        "/admin/reconciliation": {"get"},
        WATCHES: {"get", "post"},
        f"{WATCHES}/{{watch_id}}": {"get", "patch", "delete"},
        f"{WATCHES}/{{watch_id}}/pause": {"post"},
        f"{WATCHES}/{{watch_id}}/resume": {"post"},
        RUNS: {"get", "post"},
        f"{RUNS}/{{run_id}}": {"get"},
    }
    assert {p: set(paths[p]) for p in expected} == expected
    run_body = paths[RUNS]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(run_body["properties"]) == {"connection", "module", "since", "until", "dry_run"}
    watch_body = paths[WATCHES]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(watch_body["required"]) == {"connection", "product", "module"}
    assert all(op["security"] == [{"admin": []}] for p in expected for op in paths[p].values())


async def test_the_routes_need_the_admin_token(rig: Rig) -> None:
    for method, path in (("GET", "/admin/reconciliation"), ("GET", WATCHES), ("POST", WATCHES),
                         ("GET", f"{WATCHES}/1"), ("POST", RUNS), ("GET", f"{RUNS}/x")):  # fmt: skip
        answer = await rig.http.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert answer.status_code == 401, (method, path)
