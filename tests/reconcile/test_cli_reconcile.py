"""`zoho-bridge reconcile ...` and `sources set --connection`, through click's runner
against SQLite and PostgreSQL and the sandbox (each command in a thread of its own, so the
sandbox keeps serving in the test's loop)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bridge.cli import main
from bridge.cli.reconcile import eta, human
from bridge.sandbox import RunningSandbox
from bridge.secretbox import SecretBox
from bridge.services import connections
from bridge.store.database import create_engine
from tests.channel_rig import connection_body, frozen_sandbox, sandbox_now
from tests.support import BRIDGE_CMD, ROOT, SECRET_KEY, bridge_env

COMMANDS = [
    ["reconcile"], ["reconcile", "watch"], ["reconcile", "watch", "add"],
    ["reconcile", "watch", "list"], ["reconcile", "watch", "pause"],
    ["reconcile", "watch", "resume"], ["reconcile", "watch", "remove"],
    ["reconcile", "status"], ["reconcile", "run"],
]  # fmt: skip


class Cli:
    """`zoho-bridge --database-url URL ...` in a worker thread."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        # The default log level: structlog caches each logger with the level it was first
        # used at, for the whole test session (tests capturing warnings rely on it).
        self.env = {"BRIDGE_SECRET_KEY": SECRET_KEY}

    async def __call__(self, *args: str, code: int = 0) -> Result:
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke, main, ["--database-url", self.database_url, *args],
            prog_name="zoho-bridge", env=self.env,
        )  # fmt: skip
        assert result.exit_code == code, (args, result.output, result.exception)
        if code == 0:
            assert result.exception is None, result.exception
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self(*args, "--json")).stdout)


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


@pytest.fixture
async def cli(database_url: str, sandbox: RunningSandbox) -> Cli:
    engine = create_engine(database_url)
    try:
        new = connections.NewConnection(**connection_body(sandbox))
        await connections.add_connection(
            engine, SecretBox(SECRET_KEY), new, sandbox_now(sandbox.state)
        )
    finally:
        await engine.dispose()
    return Cli(database_url)


def test_every_reconcile_command_has_useful_help() -> None:
    runner = CliRunner()
    for command in COMMANDS:
        result = runner.invoke(main, [*command, "--help"], prog_name="zoho-bridge", env={})
        assert result.exit_code == 0, result.output
        assert f"Usage: zoho-bridge {' '.join(command)}" in result.output
    run_help = " ".join(runner.invoke(main, ["reconcile", "run", "--help"], env={}).output.split())
    assert "without an offset it is UTC" in run_help
    assert "--dry-run" in run_help and "--since ISO-TIME" in run_help
    add_help = " ".join(
        runner.invoke(main, ["reconcile", "watch", "add", "--help"], env={}).output.split()
    )
    assert "--full-records / --list-rows" in add_help and "60<=x<=604800" in add_help


def test_durations_for_people() -> None:
    assert [human(s) for s in (0, 45, 200, 3600, 7500, 90000, -5)] == [
        "0s", "45s", "3m 20s", "1h 0m", "2h 5m", "1d 1h", "0s"]  # fmt: skip
    assert [eta(30, 1, 4), eta(10, 0, 4), eta(10, 4, 4), eta(0, 0, 0)] == [
        "ETA 1m 30s", "ETA -", "done", "ETA -"]  # fmt: skip


async def test_watch_add_list_pause_resume_remove(cli: Cli) -> None:
    crm = await cli.json("reconcile", "watch", "add", "--connection", "acme", "--crm", "Leads",
                         "--interval", "300")  # fmt: skip
    assert (crm["id"], crm["product"], crm["module"], crm["interval_seconds"]) == (
        1, "crm", "Leads", 300)  # fmt: skip
    added = await cli("reconcile", "watch", "add", "--connection", "acme", "--books",
                      "invoices", "--strategy", "sorted", "--list-rows")  # fmt: skip
    assert added.stdout == "watch 2 added: acme books invoice, at least every 1h 0m\n"
    listed = await cli.json("reconcile", "watch", "list")
    assert [(w["id"], w["status"], w["strategy"], w["options"]) for w in listed] == [
        (2, "active", "sorted", {"full_records": False}), (1, "active", None, {})]  # fmt: skip
    table = (await cli("reconcile", "watch", "list", "--connection", "acme")).stdout
    assert "Leads" in table and "invoice" in table and "sorted" in table and "5m 0s" in table

    assert (await cli("reconcile", "watch", "pause", "1")).stdout == "watch 1 paused\n"
    listed = await cli.json("reconcile", "watch", "list")
    assert [w["status"] for w in listed] == ["active", "paused"]
    resumed = await cli("reconcile", "watch", "resume", "1")
    assert resumed.stdout == "watch 1 active again; it catches up from its cursor\n"
    assert (await cli("reconcile", "watch", "remove", "2")).stdout == "watch 2 removed\n"
    listed = await cli.json("reconcile", "watch", "list")
    assert [(w["id"], w["status"]) for w in listed] == [(1, "active")]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["add", "--connection", "acme"], 2, "give exactly one of --crm MODULE and --books"),
        (["add", "--connection", "acme", "--crm", "Leads", "--books", "bills"], 2,
         "give exactly one of"),
        (["add", "--connection", "acme", "--crm", "Le ads"], 1,
         "Error: a CRM module is its API name"),
        (["add", "--connection", "acme", "--books", "widgets"], 1,
         "Error: unknown Books entity 'widgets'"),
        (["add", "--connection", "nobody", "--crm", "Leads"], 1,
         "Error: no connection named 'nobody'"),
        (["add", "--connection", "acme", "--crm", "Leads", "--interval", "10"], 2,
         "10 is not in the range 60<=x<=604800"),
        (["add", "--connection", "acme", "--crm", "Leads", "--strategy", "filter"], 1,
         "Error: a listing strategy is for Books watches only"),
        (["add", "--connection", "acme", "--books", "bills", "--strategy", "best"], 2,
         "'best' is not one of 'filter', 'sorted', 'scan'"),
        (["pause", "999"], 1, "Error: no watch 999"),
        (["resume", "999"], 1, "Error: no watch 999"),
        (["remove", "999"], 1, "Error: no watch 999"),
        (["pause", "abc"], 2, "'abc' is not a valid integer"),
        (["remove", "0"], 2, "0 is not in the range"),
        (["list", "--connection", "nobody"], 1, "Error: no connection named 'nobody'"),
    ],
)  # fmt: skip
async def test_watch_commands_refuse_bad_input(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    result = await cli("reconcile", "watch", *args, code=code)
    assert message in result.output
    assert "Traceback" not in result.output


async def test_a_duplicate_watch_is_an_error(cli: Cli) -> None:
    add = ("reconcile", "watch", "add", "--connection", "acme", "--crm", "Leads")
    await cli(*add)
    again = await cli(*add, code=1)
    assert again.output == "Error: acme already has a crm watch on Leads\n"


def _backdate(sandbox: RunningSandbox, n: int) -> tuple[str, list[str]]:
    """`n` leads changed an hour ago (sandbox time), none announced (no channel); the
    bridge's own clock is the wall clock. Returns an hour and ten minutes ago, without an
    offset, and the ids."""
    state = sandbox.state
    state.clock.advance(time.time() - state.clock.now() - 3600)
    ids = []
    for i in range(n):
        state.clock.advance(2)
        ids.append(state.crm_create("Leads", {"Last_Name": f"Old {i}"}))
    state.clock.advance(time.time() - state.clock.now())
    since = datetime.now(UTC) - timedelta(minutes=70)
    return since.replace(tzinfo=None).isoformat(timespec="seconds"), ids


async def test_backfill_dry_run_then_real_then_status(cli: Cli, sandbox: RunningSandbox) -> None:
    await cli("reconcile", "watch", "add", "--connection", "acme", "--crm", "Leads")
    since, ids = _backdate(sandbox, 4)

    dry = await cli.json("reconcile", "run", "--since", since, "--dry-run")
    assert (dry["state"], dry["dry_run"], dry["error"]) == ("done", True, None)
    assert dry["since"] == since + "Z"  # no offset: read as UTC
    assert (dry["counts"]["would_emit"], dry["counts"]["would_emit_not_subscribed"]) == (4, 4)
    assert await cli.json("events", "list", "--origin", "reconciliation") == []
    shown = (await cli("reconcile", "run", "--since", since, "--dry-run")).stdout
    assert "would emit 4: not_subscribed 4" in shown
    assert "dry run " in shown and " done: 1 of 1 watches, 4 versions scanned" in shown

    real = (await cli("reconcile", "run", "--connection", "acme", "--module", "Leads",
                      "--since", since)).stdout  # fmt: skip
    assert "emitted 4 changes no webhook announced: not_subscribed 4" in real
    # The progress display's last state: watches done, versions, calls, credits, misses.
    assert "reconciling" in real and "1/1 versions 4 · calls " in real
    assert " · emitted 4 done" in real
    events = await cli.json("events", "list", "--origin", "reconciliation")
    assert sorted(e["record_id"] for e in events) == sorted(ids)

    status = await cli.json("reconcile", "status")
    assert set(status) == {"watches", "problems", "runs"}
    assert [r["dry_run"] for r in status["runs"]] == [False, True, True]
    assert status["watches"][0]["today"]["not_subscribed"] == 4
    table = (await cli("reconcile", "status", "--module", "Leads")).stdout
    assert "acme crm/Leads" in table and "not_subscribed 4" in table
    assert table.rstrip().endswith("no problems")
    assert (await cli.json("reconcile", "status", "--module", "invoices"))["watches"] == []


async def test_a_run_now_with_progress_and_a_summary(cli: Cli, sandbox: RunningSandbox) -> None:
    cli.env["BRIDGE_RECONCILE_GRACE_SECONDS"] = "0"
    await cli("reconcile", "watch", "add", "--connection", "acme", "--crm", "Leads")
    state = sandbox.state
    state.clock.advance(time.time() - state.clock.now() + 2)  # after the watch's start
    ids = [state.crm_create("Leads", {"Last_Name": f"New {i}"}) for i in range(3)]
    result = await cli("reconcile", "run")
    assert "emitted 3 changes no webhook announced: not_subscribed 3" in result.stdout
    assert " done: 1 of 1 watches, 3 versions scanned, " in result.stdout
    events = await cli.json("events", "list", "--origin", "reconciliation")
    assert sorted(e["record_id"] for e in events) == sorted(ids)
    again = await cli.json("reconcile", "run")
    assert (again["state"], again["counts"].get("emitted", 0)) == ("done", 0)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--since", "yesterday"], 2, "Invalid value for '--since': not an ISO 8601 time"),
        (["--until", "2026-01-01"], 1, "Error: --until needs --since"),
        (["--dry-run"], 1, "Error: a dry run is a backfill: give --since"),
        (["--since", "2026-01-02", "--until", "2026-01-01"], 1,
         "Error: until must be after since"),
        (["--since", "2999-01-01"], 1, "Error: since must be in the past"),
        (["--connection", "nobody"], 1, "Error: no connection named 'nobody'"),
        (["--module", "Deals"], 1, "Error: no active watch matches"),
    ],
)  # fmt: skip
async def test_run_refuses_bad_input(cli: Cli, args: list[str], code: int, message: str) -> None:
    await cli("reconcile", "watch", "add", "--connection", "acme", "--crm", "Leads")
    result = await cli("reconcile", "run", *args, code=code)
    assert message in result.output
    assert (await cli.json("reconcile", "status"))["runs"] == []  # nothing was queued


async def test_a_failed_run_exits_1_with_the_error(cli: Cli, sandbox: RunningSandbox) -> None:
    await cli("reconcile", "watch", "add", "--connection", "acme", "--crm", "Leads")
    sandbox.state.orgs["acme"].refresh_tokens.clear()  # the customer revoked the consent
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    # A real process, quiet: log lines go to stdout (structlog's default printer) and
    # would break the JSON.
    result = await asyncio.to_thread(
        subprocess.run,
        [*BRIDGE_CMD, "reconcile", "run", "--since", since, "--json"],
        env=bridge_env(cli.database_url, BRIDGE_LOG_LEVEL="error"), capture_output=True,
        text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    view = json.loads(result.stdout)
    assert (view["state"], "refresh token" in view["error"]) == ("failed", True)
    assert f"Error: run {view['id']} failed: " in result.stderr
    human_result = await cli("reconcile", "run", "--since", since, code=1)
    assert "Error: run " in human_result.stderr and "refresh token" in human_result.stderr


async def test_sources_set_links_a_connection(cli: Cli) -> None:
    await cli("sources", "add", "acme-books", "--token", "books-token-0123456789")
    changed = await cli("sources", "set", "acme-books", "--connection", "acme")
    assert changed.stdout.startswith("source acme-books changed")
    listed = await cli.json("sources", "list")
    assert [(s["name"], s["connection"]) for s in listed] == [("acme-books", "acme")]
    refused = await cli("sources", "set", "acme-books", "--connection", "nobody", code=1)
    assert refused.output == "Error: no connection named 'nobody'\n"
    await cli("sources", "set", "acme-books", "--connection", "")
    assert [s["connection"] for s in await cli.json("sources", "list")] == [None]
