"""The delivery commands, in process against a `serve` running as a real process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from click.testing import CliRunner, Result

from bridge.cli import main
from tests.support import bridge_env, crm_body, serve_process

from .conftest import CHANNEL, TOKEN, WEBHOOK_SECRET

COMMANDS = (
    ["subscriptions"], ["subscriptions", "add"], ["subscriptions", "list"],
    ["subscriptions", "remove"], ["subscriptions", "rewind"], ["outbox"], ["outbox", "list"],
    ["outbox", "retry"], ["status"], ["replay"], ["purge"], ["events", "replay"],
    ["events", "tail"],
)  # fmt: skip


def test_every_delivery_command_has_help() -> None:
    for command in COMMANDS:
        result = CliRunner().invoke(main, [*command, "--help"], prog_name="zoho-bridge", env={})
        assert result.exit_code == 0, result.output
        assert "Usage: zoho-bridge" in result.output


class _Refusing(BaseHTTPRequestHandler):
    """A webhook subscriber that refuses every event (400: dead at once)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def env(database_url: str) -> Iterator[dict[str, str]]:
    refusing = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=refusing.serve_forever, daemon=True)
    thread.start()
    yield bridge_env(
        database_url,
        BRIDGE_SINKS="pull,webhook",
        BRIDGE_WEBHOOK_URL=f"http://127.0.0.1:{refusing.server_address[1]}/hook",
        BRIDGE_WEBHOOK_SECRETS=WEBHOOK_SECRET,
        BRIDGE_MAX_ATTEMPTS="1",
        BRIDGE_RELAY_POLL_SECONDS="0.05",
    )
    refusing.shutdown()
    refusing.server_close()


@pytest.fixture
def served(env: dict[str, str]) -> Iterator[str]:
    with serve_process(env) as url:
        yield url


def _cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), prog_name="zoho-bridge", env=env)
    assert result.exit_code == 0, result.output
    return result


def test_subscribe_tail_outbox_status_replay_purge(env: dict[str, str], served: str) -> None:
    token = json.loads(_cli(env, "subscriptions", "add", "feed", "--from-start", "--json").output)[
        "token"
    ]
    _cli(env, "channels", "import", CHANNEL, "--token", TOKEN)
    r = httpx.post(f"{served}/hooks/crm", json=crm_body(ids=["1", "2"]))
    assert r.status_code == 200
    tailed = _cli(env, "events", "tail", "--subscription", "feed", "--url", served,
                  "--token", token, "--max-events", "2", "--json", "--ack").stdout  # fmt: skip
    envelopes = [json.loads(line) for line in tailed.splitlines()]
    assert [e["zohorecordid"] for e in envelopes] == ["1", "2"]
    listed = _cli(env, "subscriptions", "list").output
    assert "feed" in listed and token not in listed

    for _ in range(100):  # the served relay dead-letters at once (a 400)
        dead = json.loads(_cli(env, "outbox", "list", "--status", "dead", "--json").output)
        if len(dead) == 2:
            break
        time.sleep(0.05)
    assert len(dead) == 2 and all("webhook" in d["last_error"] for d in dead)
    status = json.loads(_cli(env, "status", "--json").output)
    assert status["sinks"][0]["dead"] == 2
    assert status["subscriptions"] == [{"name": "feed", "acked_seq": 2, "behind": 0}]
    assert "2 dead" in _cli(env, "status").output

    assert (
        "2 dead deliveries back to pending"
        in _cli(env, "outbox", "retry", "--sink", "webhook").output
    )
    assert "queued again for webhook" in _cli(env, "events", "replay", envelopes[0]["id"]).output
    out = _cli(env, "replay", "--since", "2000-01-01").output
    assert "2 events queued again for webhook" in out
    replays = json.loads(_cli(env, "outbox", "list", "--json").output)
    assert sum(1 for d in replays if d["replay"]) == 3
    assert "0 events purged" in _cli(env, "purge").output
    _cli(env, "subscriptions", "remove", "feed")
    assert "feed" not in _cli(env, "subscriptions", "list").output
