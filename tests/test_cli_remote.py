"""The CLI over BRIDGE_URL: commands that act on what the server does go through its admin
API, so they use the server's sinks, not those of the shell they run in. Everything runs
as real processes: `serve` with a webhook sink, and each CLI command on its own."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bridge.domain.standard_webhooks import SigningSecret
from tests.support import ADMIN, BRIDGE_CMD, ROOT, bridge_env, crm_body, serve_process

CHANNEL, TOKEN = "1000000068001", "TOKEN_FOR_VERIFICATION_OF_1000000068001"
WEBHOOK_SECRET = SigningSecret(b"r" * 32).serialize()


class Subscriber:
    """An HTTP push subscriber that accepts every event and keeps the envelopes."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        received = self.envelopes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        for _ in range(300):
            if len(self.envelopes) >= count:
                return self.envelopes
            time.sleep(0.05)
        raise AssertionError(f"{len(self.envelopes)} envelopes arrived, not {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber()
    yield sub
    sub.close()


@pytest.fixture
def served(database_url: str, subscriber: Subscriber) -> Iterator[str]:
    env = bridge_env(
        database_url, BRIDGE_SINKS="pull,webhook", BRIDGE_WEBHOOK_URL=subscriber.url,
        BRIDGE_WEBHOOK_SECRETS=WEBHOOK_SECRET, BRIDGE_RELAY_POLL_SECONDS="0.05",
    )  # fmt: skip
    with serve_process(env) as url:
        yield url


def cli(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`zoho-bridge ARGS` as its own process in a shell with `env`."""

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*BRIDGE_CMD, *args], env=env, capture_output=True, text=True,
                              timeout=60, cwd=ROOT)  # fmt: skip
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    return run


def test_the_cli_over_bridge_url_replays_to_the_servers_sinks(
    database_url: str, served: str, subscriber: Subscriber
) -> None:
    # This shell knows the database but not the server's sinks (no BRIDGE_SINKS here).
    local = cli(bridge_env(database_url))
    remote = cli(bridge_env(database_url, BRIDGE_URL=served))
    remote("channels", "import", CHANNEL, "--token", TOKEN)
    assert httpx.post(f"{served}/hooks/crm", json=crm_body(ids=["r1"])).status_code == 200
    [first] = subscriber.wait_for(1)

    status = json.loads(remote("status", "--json").stdout)
    assert [s["name"] for s in status["sinks"]] == ["webhook"]
    assert [s["name"] for s in json.loads(local("status", "--json").stdout)["sinks"]] == []

    # Without BRIDGE_URL there is no push sink to queue for: said, exit 1, nothing queued.
    refused = local("replay", "--since", "2000-01-01", code=1)
    assert "no push sink is configured here" in refused.stderr
    assert "BRIDGE_URL" in refused.stderr
    refused = local("events", "replay", first["id"], code=1)
    assert "BRIDGE_URL" in refused.stderr
    outbox = httpx.get(f"{served}/admin/outbox", headers=ADMIN).json()["items"]
    assert len(outbox) == 1

    # Over BRIDGE_URL: the server's webhook sink gets the same envelope again.
    replayed = remote("replay", "--since", "2000-01-01")
    assert "1 events queued again for webhook" in replayed.stdout
    assert remote("events", "replay", str(first["bridgeseq"])).stdout.strip() == (
        f"event {first['bridgeseq']} queued again for webhook"
    )
    envelopes = subscriber.wait_for(3)
    assert [e["id"] for e in envelopes] == [first["id"]] * 3

    rows = json.loads(remote("outbox", "list", "--json").stdout)
    assert [r["replay"] for r in rows] == [True, True, False]
    for _ in range(100):
        rows = json.loads(remote("outbox", "list", "--status", "delivered", "--json").stdout)
        if len(rows) == 3:
            break
        time.sleep(0.1)
    shown = json.loads(remote("outbox", "show", str(rows[1]["id"])).stdout)
    # `attempts` is a count in the list and the attempts themselves in one row's view.
    assert {k: v for k, v in shown.items() if k != "attempts"} == {
        k: v for k, v in rows[1].items() if k != "attempts"
    }
    assert isinstance(shown["attempts"], list)  # the relay records them (part 1 of issue 13)
    assert json.loads(local("outbox", "show", str(rows[1]["id"])).stdout) == shown
    assert "no outbox row 999999" in remote("outbox", "show", "999999", code=1).stderr
    assert "no outbox row 999999" in local("outbox", "show", "999999", code=1).stderr
    assert "0 dead deliveries back to pending" in remote("outbox", "retry").stdout


def test_requests_and_channel_renewal_over_bridge_url(database_url: str, served: str) -> None:
    remote = cli(bridge_env(database_url, BRIDGE_URL=served))
    remote("channels", "import", CHANNEL, "--token", TOKEN)
    wrong = remote("send-sample", "crm-insert", "--token", "not-the-channel-token", code=1)
    assert wrong.stdout.startswith("401 ")  # --url defaults to BRIDGE_URL

    [rejected] = json.loads(remote("requests", "list", "--status", "rejected", "--json").stdout)
    assert rejected["http_status"] == 401
    table = remote("requests", "list").stdout
    assert rejected["id"] in table and "rejected" in table
    shown = json.loads(remote("requests", "show", rejected["id"]).stdout)
    assert shown["reason"] == rejected["reason"]
    assert "not-the-channel-token" not in json.dumps(shown)  # the token is redacted
    assert "no request nope" in remote("requests", "show", "nope", code=1).stderr

    # The same answers from the database directly.
    local = cli(bridge_env(database_url))
    assert json.loads(local("requests", "show", rejected["id"]).stdout)["id"] == rejected["id"]

    # An imported channel is not the bridge's to renew, over the API and locally.
    for run in (remote, local):
        refused = run("channels", "renew", CHANNEL, code=1).stderr
        assert f"channel {CHANNEL} is imported" in refused
        assert "renewed by whoever created it" in refused
        assert "no managed channel 42" in run("channels", "renew", "42", code=1).stderr


def test_bridge_url_needs_the_admin_token(database_url: str, served: str) -> None:
    no_token = bridge_env(database_url, BRIDGE_URL=served)
    del no_token["BRIDGE_ADMIN_TOKEN"]
    refused = cli(no_token)("status", code=1)
    assert "BRIDGE_URL is set" in refused.stderr and "BRIDGE_ADMIN_TOKEN is not" in refused.stderr
    wrong = bridge_env(database_url, BRIDGE_URL=served, BRIDGE_ADMIN_TOKEN="x" * 20)
    assert "refused BRIDGE_ADMIN_TOKEN" in cli(wrong)("status", code=1).stderr
    gone = bridge_env(database_url, BRIDGE_URL="http://127.0.0.1:9")
    assert "cannot reach the bridge at BRIDGE_URL=" in cli(gone)("status", code=1).stderr
