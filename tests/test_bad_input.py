"""Bad input gets a clear status and message, never a 500, never a stored secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.settings import Settings
from bridge.store.writer import prune_rejected
from bridge.web import hooks
from bridge.web.app import create_app
from tests.support import ADMIN, crm_body, sample

TOKEN = "books-token-0123456789"
CRM_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@pytest.fixture
async def ready(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await client.post("/admin/sources", json={"name": "acme", "tokens": [TOKEN]}, headers=ADMIN)
    await client.post(
        "/admin/channels/import", json={"channel_id": "1000000068001", "token": CRM_TOKEN},
        headers=ADMIN,
    )  # fmt: skip
    return client


async def _rejected(client: httpx.AsyncClient) -> list[dict[str, object]]:
    r = await client.get("/admin/requests", params={"status": "rejected"}, headers=ADMIN)
    items: list[dict[str, object]] = r.json()["items"]
    return items


async def test_oversize_declared_body_is_413(ready: httpx.AsyncClient) -> None:
    big = b"x" * (64 * 1024 + 1)
    r = await ready.post("/hooks/books/acme", params={"token": TOKEN}, content=big)
    assert r.status_code == 413
    assert r.json() == {"error": "payload_too_large", "message": "body is larger than 65536 bytes"}
    [stored] = await _rejected(ready)
    assert stored["http_status"] == 413 and stored["body"] == ""


async def test_oversize_streamed_body_is_stopped_while_reading(ready: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # would be 1 MB; the limit is 64 KiB
            sent += 1
            yield b"y" * 1024

    r = await ready.post("/hooks/crm", content=chunks())  # chunked: no Content-Length
    assert r.status_code == 413
    assert sent < 100  # the bridge stopped reading; the rest was never pulled


async def test_body_at_the_limit_is_read(ready: httpx.AsyncClient) -> None:
    body = json.dumps({"invoice": {"invoice_id": "1", "pad": "z" * (64 * 1024 - 60)}})
    body = body + " " * (64 * 1024 - len(body))
    r = await ready.post("/hooks/books/acme", params={"token": TOKEN}, content=body,
                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("application/json", b"{not json", 400, "body is not valid JSON"),
        ("application/json", b'["a"]', 400, "body must be a JSON object"),
        ("application/json", b"\xff\xfe\xfa", 400, "body is not UTF-8 text"),
        ("application/xml", b"<invoice/>", 415, "content type 'application/xml' is not supported"),
        ("multipart/form-data; boundary=b", b"--b--", 415, "is not supported"),
        ("application/json", b'{"invoice": {"invoice_id": "' + b"9" * 101 + b'"}}', 400,
         "at most 100 characters"),
    ],
)  # fmt: skip
async def test_bad_books_bodies(
    ready: httpx.AsyncClient, content_type: str, body: bytes, status: int, message: str
) -> None:
    r = await ready.post(
        "/hooks/books/acme", params={"token": TOKEN}, content=body,
        headers={"Content-Type": content_type},
    )  # fmt: skip
    assert r.status_code == status
    assert message in r.json()["message"]
    assert (await _rejected(ready))[0]["http_status"] == status


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"{}", b'{"channel_id": "1000000068001"}', b"\x00\x01", b"[]" * 1000],
)
async def test_bad_crm_bodies_are_400(ready: httpx.AsyncClient, body: bytes) -> None:
    r = await ready.post("/hooks/crm", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "bad_request"


async def test_junk_headers_do_not_break_anything(ready: httpx.AsyncClient) -> None:
    r = await ready.post(
        "/hooks/crm", json=crm_body(),
        headers={"X-Junk": "\t" + "a" * 8000, "Content-Type": "application/json; charset=junk",
                 "X-Zoho-Webhook-Signature": "\x7f", "Cookie": "session=abc"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    stored = (await ready.get(f"/admin/requests/{r.json()['request_id']}", headers=ADMIN)).json()
    assert stored["headers"]["cookie"] == "[redacted]"


async def test_bad_content_length_is_400(ready: httpx.AsyncClient) -> None:
    r = await ready.post("/hooks/crm", content=b"{}", headers={"Content-Length": "abc"})
    assert r.status_code == 400


async def test_wrong_method_and_path(ready: httpx.AsyncClient) -> None:
    assert (await ready.get("/hooks/crm")).status_code == 405
    assert (await ready.patch("/hooks/books/acme")).status_code == 405
    r = await ready.post("/hooks/zoho")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    for path in ("/hooks/books/", "/hooks/books/acme/extra", "/hooks/crm/x"):
        r = await ready.post(path, json={})
        assert r.status_code == 404 and r.json()["error"] == "not_found", path


def test_the_front_door_matches_exactly_the_webhook_routes() -> None:
    assert hooks.match("/hooks/crm", "POST") == ("crm", None)
    assert hooks.match("/hooks/books/acme", "PUT") == ("books", "acme")
    assert hooks.match("/hooks/books/acme", "DELETE") == ("books", "acme")
    for path, method in [("/hooks/crm", "GET"), ("/hooks/books/acme", "PATCH"),
                         ("/hooks/books/", "POST"), ("/hooks/books/a/b", "POST"),
                         ("/hooks/crm/", "POST"), ("/admin/sources", "POST")]:  # fmt: skip
        assert hooks.match(path, method) is None, (path, method)


async def test_rejected_bodies_are_truncated_and_scrubbed(ready: httpx.AsyncClient) -> None:
    body = json.dumps(crm_body(token="x-guess-" + "g" * 40, pad="p" * 10_000))
    r = await ready.post("/hooks/crm", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    [stored] = await _rejected(ready)
    assert stored["body_truncated"] is True
    assert stored["body_size"] == len(body)
    full = (await ready.get(f"/admin/requests/{stored['id']}", headers=ADMIN)).json()
    assert 4000 < len(full["body"]) <= 4096  # cut to BRIDGE_REJECTED_BODY_BYTES, then scrubbed
    assert "x-guess" not in full["body"] and '"token": "[redacted]"' in full["body"]


async def test_no_secret_is_stored_anywhere(ready: httpx.AsyncClient) -> None:
    await ready.post(
        "/hooks/books/acme", params={"token": TOKEN}, json=sample("books-invoice.json")
    )
    await ready.post("/hooks/books/acme", headers={"X-Bridge-Token": TOKEN},
                     json=sample("books-contact.json"))  # fmt: skip
    await ready.post("/hooks/crm", json=crm_body())
    await ready.post("/hooks/books/acme", params={"token": TOKEN + "x"}, json={})
    everything = json.dumps(
        [(await ready.get(f"/admin/requests/{item['id']}", headers=ADMIN)).json()
         for item in (await ready.get("/admin/requests", headers=ADMIN)).json()["items"]]
        + (await ready.get("/admin/events", headers=ADMIN)).json()["items"]
        + (await ready.get("/admin/sources", headers=ADMIN)).json()["items"]
        + (await ready.get("/admin/channels", headers=ADMIN)).json()["items"]
    )  # fmt: skip
    assert TOKEN not in everything and CRM_TOKEN not in everything
    assert everything.count("redacted") >= 4  # two query tokens, a header, a CRM body


async def test_rejected_requests_are_bounded(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"rejected_keep": 100}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for i in range(230):
                await c.post("/hooks/books/nobody", params={"n": str(i)}, json={})
            r = await c.get("/admin/requests", params={"status": "rejected", "limit": 1000},
                            headers=ADMIN)  # fmt: skip
    kept = sorted(int(item["query"].removeprefix("n=")) for item in r.json()["items"])
    # Pruned after the 100th and the 200th: the newest 100 of 200, then 30 more.
    assert kept == list(range(100, 230))


async def test_prune_keeps_the_newest(ready: httpx.AsyncClient) -> None:
    for i in range(30):
        await ready.post("/hooks/books/acme", params={"n": str(i)}, json={})
    engine = ready._transport.app.state.runtime.engine  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        await prune_rejected(conn, keep=5)
    r = await ready.get("/admin/requests", params={"status": "rejected"}, headers=ADMIN)
    assert sorted(int(i["query"][2:]) for i in r.json()["items"]) == [25, 26, 27, 28, 29]


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:////nonexistent/dir/bridge.db",
                                 "postgresql+asyncpg://postgres@127.0.0.1:1/none"])  # fmt: skip
async def test_database_down_is_503(url: str) -> None:
    app = create_app(Settings.from_environ({}, database_url=url, admin_token="a" * 20))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post("/hooks/crm", json=crm_body())
            assert r.status_code == 503
            assert r.json() == {
                "error": "unavailable",
                "message": "The database is unavailable; try again later.",
            }
            assert r.headers["retry-after"] == "5"
            r = await c.post("/hooks/books/acme", json=sample("books-invoice.json"))
            assert r.status_code == 503
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "not ready"
            assert (await c.get("/healthz")).status_code == 200


def test_query_pairs_read_like_the_standard_library() -> None:
    from urllib.parse import parse_qsl

    for query in ["token=a%2Fb+c&event=created", "a&b=&=c&&d=1=2", "x=%ZZ&y=%C3%A9", "", "&"]:
        expected = tuple(parse_qsl(query, keep_blank_values=True))
        assert hooks.query_pairs(query) == expected, query
