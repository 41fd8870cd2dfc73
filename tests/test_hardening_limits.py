"""Issue 12, part 3, in the app (over ASGI, on SQLite and PostgreSQL): headers over
BRIDGE_MAX_HEADER_BYTES are answered 431 (recorded for webhooks), stored headers of
unverified requests are cut like their bodies, and a body that never finishes is answered
408 after BRIDGE_BODY_TIMEOUT_SECONDS. The server's own limits: test_hardening_server.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bridge.settings import Settings
from bridge.web.app import create_app
from tests.support import ADMIN, crm_body

CRM_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@pytest.fixture
async def ready(client: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": CRM_TOKEN, "source": "acme-eu"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/admin/sources", json={"name": "acme", "tokens": ["books-token-0123456789"]},
        headers=ADMIN,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return client


async def _stored(client: httpx.AsyncClient) -> dict[str, Any]:
    items = (await client.get("/admin/requests", headers=ADMIN)).json()["items"]
    r = await client.get(f"/admin/requests/{items[0]['id']}", headers=ADMIN)
    stored: dict[str, Any] = r.json()
    return stored


def _junk(total: int) -> dict[str, str]:
    """Headers of about `total` bytes (names and values), in 1 KiB values."""
    return {f"x-junk-{i:03d}": "j" * 1013 for i in range(total // 1024)}


@pytest.mark.parametrize("path", ["/hooks/crm", "/hooks/books/acme", "/hooks/books/nobody"])
async def test_webhook_headers_over_the_limit_are_431_recorded_and_cut(
    ready: httpx.AsyncClient, path: str
) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        sent += 1
        yield b'{"never": "read"}'

    r = await ready.post(path, content=body(), headers=_junk(17 * 1024))
    assert r.status_code == 431, r.text
    assert r.json() == {
        "error": "request_header_fields_too_large",
        "message": "request headers are larger than 16384 bytes",
    }
    assert r.headers["connection"] == "close"
    assert sent == 0  # the body was never read
    stored = await _stored(ready)
    assert (stored["status"], stored["http_status"], stored["body_size"]) == ("rejected", 431, 0)
    assert stored["reason"] == "request headers are larger than 16384 bytes"
    headers = stored["headers"]
    assert sum(len(k) + len(v) for k, v in headers.items() if k != "[truncated]") == 4096
    assert headers["[truncated]"].endswith("characters of headers not kept")


@pytest.mark.parametrize(
    "path", ["/admin/events", "/healthz", "/nowhere", "/v1/subscriptions/x/events"]
)
async def test_other_paths_over_the_limit_are_431_too(ready: httpx.AsyncClient, path: str) -> None:
    r = await ready.get(path, headers={**ADMIN, **_junk(20 * 1024)})
    assert (r.status_code, r.json()["error"]) == (431, "request_header_fields_too_large")
    items = (await ready.get("/admin/requests", headers=ADMIN)).json()["items"]
    assert items == []  # only webhooks are recorded


async def test_unverified_requests_keep_cut_headers_verified_ones_whole(
    ready: httpx.AsyncClient,
) -> None:
    junk = _junk(12 * 1024)
    r = await ready.post("/hooks/crm", json=crm_body(token="guessed-token-guessed"), headers=junk)
    assert r.status_code == 401
    cut = (await _stored(ready))["headers"]
    assert "[truncated]" in cut
    assert sum(len(k) + len(v) for k, v in cut.items() if k != "[truncated]") == 4096
    r = await ready.post("/hooks/crm", json=crm_body(), headers=junk)
    assert r.status_code == 200, r.text
    whole = (await _stored(ready))["headers"]
    assert "[truncated]" not in whole and all(whole[k] == v for k, v in junk.items())


async def test_secret_headers_stay_redacted_when_cut(ready: httpx.AsyncClient) -> None:
    headers = {"authorization": "Bearer " + "s" * 3000, "x-bridge-token": "t" * 3000,
               **_junk(8 * 1024)}  # fmt: skip
    r = await ready.post("/hooks/books/acme", json={}, headers=headers)
    assert r.status_code == 401
    stored = await _stored(ready)
    assert stored["headers"]["authorization"] == "[redacted]"
    assert "sss" not in str(stored) and "ttt" not in str(stored)


class _SlowBody:
    """An ASGI receive that sends part of a body, then nothing more, ever."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"type": "http.request", "body": self.first, "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")


async def _call(app: Any, path: str, receive: Any, headers: list[tuple[bytes, bytes]],
                method: str = "POST") -> tuple[int, dict[str, Any], dict[bytes, bytes]]:  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": headers, "client": ("203.0.113.9", 5555),
        "server": ("bridge.test", 80), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    import json

    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], json.loads(body), dict(start["headers"])


async def test_a_body_that_never_finishes_is_408_and_recorded(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"body_timeout_seconds": 0.3}))
    async with app.router.lifespan_context(app):
        started = time.monotonic()
        status, body, headers = await _call(
            app, "/hooks/crm", _SlowBody(b'{"channel_id": "1000'),
            [(b"content-type", b"application/json"), (b"content-length", b"5000")],
        )  # fmt: skip
        waited = time.monotonic() - started
        assert (status, body) == (408, {
            "error": "request_timeout", "message": "the body was not received within 0.3 seconds"})  # fmt: skip
        assert headers[b"connection"] == b"close"
        assert 0.3 <= waited < 2.0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            [stored] = (await c.get("/admin/requests", headers=ADMIN)).json()["items"]
            # An admin body that never finishes is timed out the same way.
            status, body, _ = await _call(
                app, "/admin/subscriptions", _SlowBody(b'{"na'),
                [(b"authorization", ADMIN["Authorization"].encode()),
                 (b"content-length", b"100")],
            )  # fmt: skip
            assert (status, body["error"]) == (408, "request_timeout")
    assert (stored["status"], stored["http_status"], stored["remote_addr"]) == (
        "rejected", 408, "203.0.113.9")  # fmt: skip
    assert stored["reason"] == "the body was not received within 0.3 seconds"


class _Whole:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self) -> dict[str, Any]:
        return {"type": "http.request", "body": self.body, "more_body": False}


async def test_headers_at_the_limit_pass_one_byte_more_is_431(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        head = [(b"content-type", b"application/json"), (b"x-pad", b"")]
        pad = 16 * 1024 - sum(len(k) + len(v) for k, v in head)
        head[1] = (b"x-pad", b"p" * pad)
        status, body, _ = await _call(app, "/hooks/crm", _Whole(b'{"x": 1}'), head)
        assert (status, body["message"]) == (400, "channel_id is missing")  # read and parsed
        head[1] = (b"x-pad", b"p" * (pad + 1))
        status, body, _ = await _call(app, "/hooks/crm", _Whole(b'{"x": 1}'), head)
        assert status == 431


async def test_deadlines_do_not_touch_bodies_that_arrive(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"body_timeout_seconds": 0.2}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

            async def slowly() -> AsyncIterator[bytes]:
                for part in (b'{"channel_id"', b': "1", "token": "x"}'):
                    await asyncio.sleep(0.05)
                    yield part

            for _ in range(10):
                r = await c.post("/hooks/crm", content=slowly())
                assert r.status_code == 400, r.text  # read whole, then parsed
            await asyncio.sleep(0.5)  # sweeps after the reads ended find nothing to cancel
            assert (await c.get("/healthz")).status_code == 200


@pytest.mark.parametrize("value", ["abc", "-1", "9" * 5000, "1e3", "+5"])
async def test_bad_content_length_is_400_and_recorded(ready: httpx.AsyncClient, value: str) -> None:
    r = await ready.post("/hooks/crm", content=b"{}", headers={"Content-Length": value})
    assert r.status_code in (400, 413), r.text
    stored = await _stored(ready)
    assert (stored["status"], stored["http_status"]) == ("rejected", r.status_code)
