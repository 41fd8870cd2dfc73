"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright's
Python package; nothing is downloaded) against a real `serve` process: sign in, filter
events by time range, open an event and see its envelope, raw request and deliveries,
replay it to one sink after confirming, sign out; the page fits a 420 px wide screen."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.delivery.conftest import WEBHOOK_SECRET
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    BRIDGE_CMD,
    bridge_env,
    crm_body,
    free_port,
    serve_process,
)

CHROMIUM = "/usr/bin/chromium"
CHANNEL, TOKEN = "1000000068001", "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Not a skip: CI installs Debian's chromium (.ci/run); without it this test must fail.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


REFUSED = "4876876000000102"


class Subscriber(BaseHTTPRequestHandler):
    """A webhook subscriber that refuses (400) the event of REFUSED while `refusing` is set
    and otherwise answers 503: deliveries stay pending, one is dead-lettered."""

    refusing = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        refused = REFUSED.encode() in body and self.refusing.is_set()
        self.send_response(400 if refused else 503 if REFUSED.encode() not in body else 204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bridge(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    database = tmp_path / "bridge.db"
    shutil.copy(sqlite_template, database)
    subscriber = ThreadingHTTPServer(("127.0.0.1", 0), Subscriber)
    threading.Thread(target=subscriber.serve_forever, daemon=True).start()
    Subscriber.refusing.set()
    env = bridge_env(
        f"sqlite+aiosqlite:///{database}", BRIDGE_SINKS="pull,webhook",
        BRIDGE_WEBHOOK_URL=f"http://127.0.0.1:{subscriber.server_port}/in",
        BRIDGE_WEBHOOK_SECRETS=WEBHOOK_SECRET, BRIDGE_SCHEDULER="false",
        BRIDGE_RETRY_BASE_SECONDS="60",
    )  # fmt: skip
    try:
        with serve_process(env) as url:
            imported = httpx.post(f"{url}/admin/channels/import", headers=ADMIN,
                                  json={"channel_id": CHANNEL, "token": TOKEN})  # fmt: skip
            assert imported.status_code == 201, imported.text
            for n, record in enumerate(("4876876000000101", REFUSED)):
                body = crm_body(ids=[record], server_time=1718117126473 + n)
                assert httpx.post(f"{url}/hooks/crm", json=body).status_code == 200
            for _ in range(100):  # the relay dead-letters the refused one
                dead = httpx.get(f"{url}/admin/outbox?status=dead", headers=ADMIN).json()
                if dead["items"]:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("no dead letter")
            yield url
    finally:
        subscriber.shutdown()
        subscriber.server_close()


def _sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/admin/ui/events")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Events")).to_be_visible()


def test_an_operator_finds_an_event_replays_it_and_signs_out(browser: Browser, bridge: str) -> None:
    page = browser.new_page(viewport={"width": 420, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _sign_in(page, bridge)
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(2)
    # Local times with their age; the UTC value stays in the title.
    expect(rows.first.locator(".age")).to_contain_text("ago")

    page.get_by_label("received from (UTC)").fill("2999-01-01T00:00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("p.empty")).to_contain_text("No events match these filters")
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("last").select_option("15m")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    assert "range=15m" in page.url

    page.get_by_role("link", name="4876876000000101").click()
    expect(page.get_by_role("heading", name="Envelope")).to_be_visible()
    expect(page.locator("#envelope")).to_contain_text('"specversion": "1.0"')
    expect(page.locator("#data")).to_contain_text('"server_time": 1718117126473')
    expect(page.locator("#body")).to_contain_text("4876876000000101")
    expect(page.locator("#headers")).to_contain_text("content-type: application/json")
    assert TOKEN not in page.content()
    deliveries = page.locator("table.deliveries > tbody > tr:not(.attempts)")
    expect(deliveries).to_have_count(1)
    expect(deliveries.first).to_contain_text("pending")
    # Its attempts so far: the subscriber answered 503 (see Subscriber).
    attempts = page.locator("table.attempts tbody tr")
    expect(attempts.first).to_contain_text("retry")
    expect(attempts.first).to_contain_text("503")

    page.get_by_label("Replay to").select_option("webhook")
    page.get_by_role("button", name="Replay…").click()
    expect(page.get_by_role("heading", name="Replay event")).to_be_visible()
    page.get_by_role("button", name="Replay to webhook").click()
    expect(page.get_by_role("status")).to_contain_text("Queued again for webhook")
    expect(deliveries).to_have_count(2)
    expect(deliveries.nth(1)).to_contain_text("yes")

    # 420 px wide: the page itself never scrolls sideways (wide tables scroll in their box).
    assert page.evaluate("document.documentElement.scrollWidth") <= 420

    # The dead letter: listed, selected, retried after confirming; the subscriber takes it.
    Subscriber.refusing.clear()
    page.get_by_role("link", name="Deliveries").click()
    expect(page.locator("table.sinks")).to_contain_text("webhook")
    page.locator('table.sinks a[href*="status=dead"]').click()  # the sink's dead count
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    dead = page.locator("table.deliveries tbody tr")
    expect(dead).to_have_count(1)
    expect(dead.first).to_contain_text("400")
    dead.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Retry selected…").click()
    expect(page.get_by_role("heading", name="Retry dead deliveries?")).to_be_visible()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("1 dead deliveries queued again")
    for _ in range(50):
        page.goto(f"{bridge}/admin/ui/deliveries?status=dead")
        if page.locator("p.empty").count():
            break
        time.sleep(0.1)
    expect(page.locator("p.empty")).to_contain_text("No dead letters")
    assert page.evaluate("document.documentElement.scrollWidth") <= 420

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{bridge}/admin/ui/events")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The policy refused nothing the page needs (the wrong token's 401 and the browser's
    # favicon request are "failed to load" errors, and expected).
    assert [e for e in errors if "Failed to load resource" not in e] == []


@pytest.fixture
def sandbox_org(tmp_path: Path) -> Iterator[dict[str, object]]:
    """`zoho-bridge sandbox` as a real process with one org; yields the org's credentials."""
    port = free_port()
    printed = tmp_path / "sandbox.out"
    with printed.open("w") as out:
        proc = subprocess.Popen(
            [*BRIDGE_CMD, "sandbox", "--port", str(port), "--org", "acme"], cwd=tmp_path,
            stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        for _ in range(200):
            lines = printed.read_text().splitlines()
            try:
                httpx.get(f"http://127.0.0.1:{port}/_sandbox/orgs", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if lines:
                break
        org: dict[str, object] = json.loads(printed.read_text().splitlines()[0])
        yield org
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_failing_channel_is_flagged(
    browser: Browser, tmp_path: Path, sqlite_template: Path, sandbox_org: dict[str, object]
) -> None:
    database = tmp_path / "bridge.db"
    shutil.copy(sqlite_template, database)
    env = bridge_env(f"sqlite+aiosqlite:///{database}", BRIDGE_SCHEDULER="false",
                     BRIDGE_PUBLIC_URL="https://bridge.example")  # fmt: skip
    refresh = str(sandbox_org["refresh_tokens"][0])  # type: ignore[index]
    with serve_process(env) as url:
        connection = {k: sandbox_org[k] for k in ("dc", "client_id", "client_secret",
                      "organization_id", "accounts_url", "api_domain")}  # fmt: skip
        added = httpx.post(f"{url}/admin/connections", headers=ADMIN,
                           json={"name": "acme", "refresh_token": refresh, **connection})  # fmt: skip
        assert added.status_code == 201, added.text
        created = httpx.post(f"{url}/admin/channels", headers=ADMIN, timeout=30,
                             json={"connection": "acme", "events": ["Leads.all"]})  # fmt: skip
        assert created.status_code == 201, created.text
        channel = created.json()["channel_id"]
        # The consent is revoked at Zoho: the next renewal fails.
        revoked = httpx.post(f"{sandbox_org['accounts_url']}/oauth/v2/token/revoke",
                             params={"token": refresh})  # fmt: skip
        assert revoked.status_code == 200, revoked.text

        page = browser.new_page(viewport={"width": 420, "height": 900})
        _sign_in(page, url)
        page.get_by_role("link", name="Channels").click()
        row = page.locator(f'tr[data-channel="{channel}"]')
        expect(row).to_have_class("")
        row.get_by_role("link", name="Renew…").click()
        page.get_by_role("button", name="Renew now").click()
        expect(page.get_by_role("heading", name="Cannot do that")).to_be_visible()
        page.get_by_role("link", name="Channels").click()
        expect(row).to_have_class("bad")  # paused: its connection needs a new consent
        expect(row).to_contain_text("paused")
        page.get_by_role("link", name="Setup").click()
        expect(page.locator("table.connections")).to_contain_text(
            "zoho-bridge connections update acme --refresh-token"
        )
        page.get_by_role("link", name="Overview").click()
        expect(page.locator("#problems")).to_contain_text("connection acme is needs_reauth")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
