"""The command line, run as a real process against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ADMIN, BRIDGE_CMD, ROOT, bridge_env, crm_body, serve_process


def _run(database_url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*BRIDGE_CMD, *args], env=bridge_env(database_url), capture_output=True, text=True,
        timeout=60, cwd=ROOT,
    )  # fmt: skip
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def served(database_url: str) -> Iterator[str]:
    with serve_process(bridge_env(database_url)) as url:
        yield url


def test_every_command_has_help() -> None:
    from click.testing import CliRunner

    from bridge.cli import main

    runner = CliRunner()
    for command in (
        [], ["serve"], ["db"], ["db", "upgrade"], ["db", "current"], ["sources"],
        ["sources", "add"], ["sources", "list"], ["sources", "set"], ["channels"],
        ["channels", "import"], ["channels", "list"], ["channels", "add-token"], ["events"],
        ["events", "list"], ["events", "show"], ["send-sample"], ["keygen"],
        ["channels", "create"], ["channels", "renew"], ["channels", "rotate"],
        ["channels", "disable"], ["channels", "gaps"], ["connections"],
        ["connections", "add"], ["connections", "list"], ["connections", "update"],
        ["connections", "remove"], ["connections", "check"], ["sandbox"], ["requests"],
        ["requests", "list"], ["requests", "show"], ["outbox", "show"],
    ):  # fmt: skip
        result = runner.invoke(main, [*command, "--help"], prog_name="zoho-bridge", env={})
        assert result.exit_code == 0, result.output
        assert "Usage: zoho-bridge" in result.output


def test_a_source_url_names_the_running_bridge_without_a_public_url(database_url: str) -> None:
    env = bridge_env(database_url) | {"BRIDGE_URL": "http://127.0.0.1:8765/"}
    result = subprocess.run([*BRIDGE_CMD, "sources", "add", "books", "--json"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    source = json.loads(result.stdout)
    assert source["hook_url"] == "http://127.0.0.1:8765/hooks/books/books"
    assert source["hook_url_with_token"].startswith("http://127.0.0.1:8765/hooks/books/books?")
    public = env | {"BRIDGE_PUBLIC_URL": "https://hooks.example.com"}
    listed = subprocess.run([*BRIDGE_CMD, "sources", "list", "--json"], env=public,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert json.loads(listed.stdout)[0]["hook_url"] == "https://hooks.example.com/hooks/books/books"


def test_sources_channels_and_events_end_to_end(database_url: str, served: str) -> None:
    out = _run(database_url, "sources", "add", "books", "--json").stdout
    source = json.loads(out)
    assert source["hook_url"].endswith("/hooks/books/books")
    token = source["token"]
    _run(database_url, "channels", "import", "1000000068001",
         "--token", "TOKEN_FOR_VERIFICATION_OF_1000000068001", "--events", "Leads.all",
         "--source", "acme")  # fmt: skip
    listed = json.loads(_run(database_url, "channels", "list", "--json").stdout)
    assert [(c["channel_id"], c["events"]) for c in listed] == [("1000000068001", ["Leads.all"])]
    for name in ("crm-insert", "crm-update-several-ids", "books-invoice", "books-ping"):
        # --token is the token to send, for Books and CRM alike (CRM samples carry their own)
        own = ["--token", token] if name.startswith("books") else []
        sent = _run(database_url, "send-sample", name, "--url", served, *own)
        assert sent.stdout.startswith("200 ")
    refused = _run(database_url, "send-sample", "books-invoice", "--url", served,
                   "--token", "not-the-token-at-all", ok=False)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stdout.startswith("401 ")
    events = json.loads(_run(database_url, "events", "list", "--json").stdout)
    assert len(events) == 5
    assert {e["source"] for e in events} == {"acme", "books"}
    shown = json.loads(_run(database_url, "events", "show", str(events[-1]["seq"])).stdout)
    assert shown["id"] == events[-1]["id"]
    table = _run(database_url, "events", "list", "--module", "Leads").stdout
    assert table.count("webhook") == 4
    several = next(e for e in events if e["record_id"].endswith("0301"))["request_id"]
    of_one = _run(database_url, "events", "list", "--request-id", several, "--json").stdout
    assert sorted(e["record_id"][-4:] for e in json.loads(of_one)) == ["0301", "0302", "0303"]
    assert token not in _run(database_url, "sources", "list").stdout
    r = httpx.get(f"{served}/admin/requests", headers=ADMIN)
    assert r.status_code == 200
    assert token not in r.text


def test_errors_are_clean_messages(database_url: str) -> None:
    _run(database_url, "sources", "add", "dup", "--token", "a-token-of-length-20")
    again = _run(database_url, "sources", "add", "dup", "--token", "a-token-of-length-20", ok=False)
    assert again.returncode == 1
    assert again.stderr.strip() == "Error: a source named 'dup' already exists"
    missing = _run(database_url, "events", "show", "nope", ok=False)
    assert "Error: no event nope" in missing.stderr
    assert "Traceback" not in missing.stderr + again.stderr


def test_db_current_and_keygen(database_url: str) -> None:
    assert "up to date" in _run(database_url, "db", "current").stdout
    key = _run(database_url, "keygen").stdout.strip()
    assert len(key) == 44


def test_send_sample_lists_samples(sqlite_template: object) -> None:
    names = _run(f"sqlite+aiosqlite:///{sqlite_template}", "send-sample", "--list").stdout.split()
    assert {"crm-insert", "books-invoice", "books-invoice-jsonstring"} <= set(names)


def test_workers_need_postgres(tmp_path: object) -> None:
    result = _run(f"sqlite+aiosqlite:///{tmp_path}/w.db", "serve", "--workers", "2", ok=False)
    assert result.returncode == 2
    assert "--workers above 1 needs PostgreSQL" in result.stderr


@pytest.mark.postgres
def test_two_workers_on_postgres(postgres_url: str) -> None:
    token = "worker-token-0123456789"
    with serve_process(bridge_env(postgres_url), "--workers", "2") as url:
        r = httpx.post(f"{url}/admin/channels/import", headers=ADMIN,
                       json={"channel_id": "777", "token": token})  # fmt: skip
        assert r.status_code == 201
        answers = [
            httpx.post(f"{url}/hooks/crm",
                       json=crm_body(channel_id="777", token=token, server_time=i, ids=[f"w{i}"]))
            for i in range(20)
        ]  # fmt: skip
    assert [a.json()["events"] for a in answers] == [1] * 20
