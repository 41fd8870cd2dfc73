"""The operator console under /admin/ui, over ASGI on both databases: signing in and out,
events with filters, time range and paging, an event's envelope, data, raw request and
deliveries, replay with a confirmation and a CSRF token. (In a real browser:
tests/test_console_browser.py.)"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.settings import Settings
from bridge.sinks.config import SinkConfig
from bridge.web.app import create_app
from tests.delivery.conftest import WEBHOOK_SECRET
from tests.sinks.support import closed_port_socket
from tests.support import ADMIN, ADMIN_TOKEN, crm_body

CHANNEL, TOKEN = "1000000068001", "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@pytest.fixture
async def console(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with one webhook push sink nobody listens on: deliveries stay pending."""
    sock = closed_port_socket()
    port = sock.getsockname()[1]
    sinks = SinkConfig(sinks=("pull", "webhook"), webhook_url=f"http://127.0.0.1:{port}/in",
                       webhook_secrets=(WEBHOOK_SECRET,))  # fmt: skip
    app = create_app(settings.model_copy(update={"sink_config": sinks}))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as c:
                imported = await c.post("/admin/channels/import", headers=ADMIN,
                                        json={"channel_id": CHANNEL, "token": TOKEN})  # fmt: skip
                assert imported.status_code == 201
                yield c
    finally:
        sock.close()


async def _sign_in(client: httpx.AsyncClient) -> None:
    answer = await client.post("/admin/ui/login", data={"token": ADMIN_TOKEN, "next": ""})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin/ui" in cookie
    assert ADMIN_TOKEN not in cookie


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def test_pages_need_a_session_and_sign_out_ends_it(console: httpx.AsyncClient) -> None:
    away = await console.get("/admin/ui/events?module=Leads")
    assert away.status_code == 303
    assert (
        away.headers["location"] == "/admin/ui/login?next=%2Fadmin%2Fui%2Fevents%3Fmodule%3DLeads"
    )
    wrong = await console.post("/admin/ui/login", data={"token": "not-the-token", "next": ""})
    assert wrong.status_code == 401
    assert "not the admin token" in wrong.text
    assert "set-cookie" not in wrong.headers
    # Only console paths are followed after signing in: no open redirect.
    for target in ("//evil.example/x", "https://evil.example/", "/admin/ui\\..\\x"):
        answer = await console.post("/admin/ui/login", data={"token": ADMIN_TOKEN, "next": target})
        assert answer.headers["location"] == "/admin/ui/"
    back = await console.post("/admin/ui/login",
                              data={"token": ADMIN_TOKEN, "next": "/admin/ui/events?module=Leads"})  # fmt: skip
    assert back.headers["location"] == "/admin/ui/events?module=Leads"

    page = await console.get("/admin/ui/events")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    assert "No events yet" in page.text
    forged = await console.post("/admin/ui/logout", data={"csrf": "0" * 32})
    assert forged.status_code == 403
    assert (await console.get("/admin/ui/events")).status_code == 200
    out = await console.post("/admin/ui/logout", data={"csrf": _csrf(page.text)})
    assert out.status_code == 303
    assert (await console.get("/admin/ui/events")).status_code == 303
    # A forged or tampered cookie is no session.
    console.cookies.set("zb_console", "99999999999.deadbeef", path="/admin/ui")
    assert (await console.get("/admin/ui/events")).status_code == 303


async def test_events_filter_by_time_range_and_page(console: httpx.AsyncClient) -> None:
    await _sign_in(console)
    for n in range(55):
        body = crm_body(ids=[f"4876876000000{n:03d}"], server_time=1718117126473 + n)
        assert (await console.post("/hooks/crm", json=body)).status_code == 200
    first = await console.get("/admin/ui/events?module=Leads")
    assert first.status_code == 200
    seqs = re.findall(
        r'<td class="seq"><a href="/admin/ui/events/[0-9A-Z]+">(\d+)</a></td>', first.text
    )
    assert len(seqs) == 50
    older = re.search(r'href="/admin/ui/events\?([^"]+)" rel="next"', first.text)
    assert older is not None
    second = await console.get("/admin/ui/events?" + older.group(1).replace("&amp;", "&"))
    rest = re.findall(
        r'<td class="seq"><a href="/admin/ui/events/[0-9A-Z]+">(\d+)</a></td>', second.text
    )
    assert len(rest) == 5 and set(rest).isdisjoint(seqs)
    assert "module=Leads" in older.group(1)

    recent = await console.get("/admin/ui/events?range=15m")
    assert recent.text.count('rel="next"') == 1
    future = await console.get("/admin/ui/events?since=2999-01-01T00:00")
    assert "No events match these filters" in future.text
    past = await console.get("/admin/ui/events?until=2000-01-01T00:00:00")
    assert "No events match these filters" in past.text
    bad = await console.get("/admin/ui/events?since=yesterday")
    assert bad.status_code == 400
    assert "since must be an ISO 8601 time" in bad.text
    odd = await console.get("/admin/ui/events?operation=exploded")
    assert odd.status_code == 400 and "operation must be one of" in odd.text
    record = await console.get("/admin/ui/events?record_id=4876876000000007")
    assert len(re.findall(r'rel="next"', record.text)) == 0
    assert ">4876876000000007</a>" in record.text


async def test_an_event_shows_its_envelope_data_raw_request_and_deliveries(
    console: httpx.AsyncClient,
) -> None:
    await _sign_in(console)
    body = crm_body(ids=["4876876000000333"])
    accepted = await console.post("/hooks/crm", json=body, headers={"X-Trace": "<b>x</b>"})
    event_id = accepted.json()["event_ids"][0]
    page = await console.get(f"/admin/ui/events/{event_id}")
    assert page.status_code == 200
    assert event_id in page.text
    assert "&#34;specversion&#34;: &#34;1.0&#34;" in page.text  # the envelope, escaped
    assert "4876876000000333" in page.text
    assert "POST /hooks/crm" in page.text
    assert "x-trace: &lt;b&gt;x&lt;/b&gt;" in page.text  # escaped, never markup
    assert TOKEN not in page.text  # the channel token is redacted from the raw body
    assert "<td>webhook</td><td>pending</td>" in page.text

    confirm = await console.get(f"/admin/ui/events/{event_id}/replay?sink=webhook")
    assert confirm.status_code == 200
    assert "Replay event" in confirm.text
    events_before = (await console.get("/admin/outbox?sink=webhook", headers=ADMIN)).json()
    forged = await console.post(f"/admin/ui/events/{event_id}/replay",
                                data={"csrf": "f" * 32, "sink": "webhook"})  # fmt: skip
    assert forged.status_code == 403
    done = await console.post(f"/admin/ui/events/{event_id}/replay",
                              data={"csrf": _csrf(confirm.text), "sink": "webhook"})  # fmt: skip
    assert done.status_code == 303
    after = await console.get(done.headers["location"])
    assert "Queued again for webhook." in after.text
    assert after.text.count("<td>webhook</td>") == 2
    rows = (await console.get("/admin/outbox?sink=webhook", headers=ADMIN)).json()["items"]
    assert len(rows) == len(events_before["items"]) + 1

    nowhere = await console.get(f"/admin/ui/events/{event_id}/replay?sink=pull")
    assert nowhere.status_code == 400
    assert "rewind" in nowhere.text
    missing = await console.get("/admin/ui/events/01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert missing.status_code == 404


async def test_the_console_is_off_without_an_admin_token(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"admin_token": None}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as c:
            for answer in (await c.get("/admin/ui/events"), await c.get("/admin/ui/login"),
                           await c.post("/admin/ui/login", data={"token": "x"})):  # fmt: skip
                assert answer.status_code == 403
                assert "BRIDGE_ADMIN_TOKEN" in answer.text


async def test_the_overview_says_what_is_wrong(console: httpx.AsyncClient) -> None:
    await _sign_in(console)
    page = await console.get("/admin/ui/")
    assert page.status_code == 200
    assert "No problem" in page.text
    assert "Nothing is reconciled yet" in page.text
    body = crm_body(ids=["4876876000000777"])
    assert (await console.post("/hooks/crm", json=body)).status_code == 200
    for _ in range(100):  # the relay finds the subscriber unreachable and records it
        page = await console.get("/admin/ui/")
        assert page.status_code == 200
        if "<td>unreachable</td>" in page.text:
            break
        await asyncio.sleep(0.05)
    problems = re.search(r'<ul class="problems" id="problems">(.*?)</ul>', page.text, re.S)
    assert problems is not None
    assert "sink webhook is unreachable" in problems.group(1)
    sink = re.search(r'<tr class="(\w*)"><td><a href="/admin/ui/deliveries\?sink=webhook">webhook</a>'
                     r"</td><td>(\w+)</td><td>(\d+)</td>", page.text)  # fmt: skip
    assert sink is not None, page.text
    assert sink.groups() == ("bad", "unreachable", "1")
    assert (await console.get("/admin/ui")).headers["location"] == "/admin/ui/"
