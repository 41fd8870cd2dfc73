"""/hooks/books/{source} through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from bridge.domain.books_signature import sign, sign_hex
from tests.support import ADMIN, SAMPLES, sample

TOKEN = "books-token-0123456789"
OLD_TOKEN = "books-token-old-987654"
SECRET = "BooksSecret0123456789"
NEW_SECRET = "BooksSecretNew987654321"


async def _source(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    r = await client.post("/admin/sources", json={"name": "acme", **body}, headers=ADMIN)
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


@pytest.fixture
async def token_source(client: httpx.AsyncClient) -> None:
    await _source(client, tokens=[TOKEN, OLD_TOKEN])


@pytest.fixture
async def signed_source(client: httpx.AsyncClient) -> None:
    await _source(client, tokens=[TOKEN], secrets=[SECRET, NEW_SECRET])


async def _events(client: httpx.AsyncClient) -> list[dict[str, object]]:
    items: list[dict[str, object]] = (await client.get("/admin/events", headers=ADMIN)).json()[
        "items"
    ]
    return items


@pytest.mark.usefixtures("token_source")
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_invoice_by_each_method(client: httpx.AsyncClient, method: str) -> None:
    r = await client.request(
        method, "/hooks/books/acme", params={"token": TOKEN}, json=sample("books-invoice.json")
    )
    assert r.status_code == 200, r.text
    assert r.json()["events"] == 1
    [event] = await _events(client)
    assert (event["product"], event["source"], event["module"], event["operation"]) == (
        "books", "acme", "invoice", "changed"
    )  # fmt: skip
    assert event["record_id"] == "4372460000000650034"
    assert event["occurred_at"] == "2025-04-09T15:31:02Z"
    assert event["data"] == sample("books-invoice.json")["invoice"]


@pytest.mark.usefixtures("token_source")
async def test_token_in_header_and_rotated_token(client: httpx.AsyncClient) -> None:
    a = await client.post(
        "/hooks/books/acme",
        headers={"X-Bridge-Token": OLD_TOKEN},
        json=sample("books-contact.json"),
    )
    b = await client.post("/hooks/books/acme?token=" + TOKEN, json=sample("books-payment.json"))
    assert (a.status_code, b.status_code) == (200, 200)
    assert {e["module"] for e in await _events(client)} == {"contact", "payment"}


@pytest.mark.usefixtures("token_source")
@pytest.mark.parametrize(
    ("params", "headers", "message"),
    [
        ({}, {}, "token is missing"),
        ({"token": "wrong-token-000000"}, {}, "token does not match"),
        ({}, {"X-Bridge-Token": TOKEN[:-1]}, "token does not match"),
    ],
)
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], message: str
) -> None:
    r = await client.post(
        "/hooks/books/acme", params=params, headers=headers, json=sample("books-invoice.json")
    )
    assert r.status_code == 401
    assert r.json()["message"].startswith(message)
    assert await _events(client) == []


@pytest.mark.usefixtures("token_source")
async def test_event_parameter_sets_the_operation(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/hooks/books/acme", params={"token": TOKEN, "event": "created"},
        json=sample("books-invoice.json"),
    )  # fmt: skip
    assert r.status_code == 200
    assert (await _events(client))[0]["operation"] == "created"
    bad = await client.post(
        "/hooks/books/acme", params={"token": TOKEN, "event": "paid"},
        json=sample("books-invoice.json"),
    )  # fmt: skip
    assert bad.status_code == 400
    assert "created, updated, deleted, changed" in bad.json()["message"]


@pytest.mark.usefixtures("token_source")
async def test_form_bodies(client: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for name in ("books-invoice-jsonstring.form", "books-invoice-fields.form"):
        r = await client.post(
            "/hooks/books/acme", params={"token": TOKEN},
            content=(SAMPLES / name).read_bytes().strip(), headers=form,
        )  # fmt: skip
        assert (r.status_code, r.json()["events"]) == (200, 1), r.text
    assert [e["record_id"] for e in await _events(client)] == ["4372460000000650034"] * 2


@pytest.mark.usefixtures("token_source")
async def test_raw_text_body(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/hooks/books/acme", params={"token": TOKEN},
        content=json.dumps(sample("books-invoice.json")), headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    assert r.json()["events"] == 1


@pytest.mark.usefixtures("token_source")
@pytest.mark.parametrize("body", [b"", b'{"payload": ""}', b"{}"])
async def test_ping_is_stored_without_an_event(client: httpx.AsyncClient, body: bytes) -> None:
    r = await client.post(
        "/hooks/books/acme", params={"token": TOKEN}, content=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 200
    assert r.json()["events"] == 0 and r.json()["status"] == "accepted"
    stored = (await client.get("/admin/requests", headers=ADMIN)).json()["items"]
    assert [s["status"] for s in stored] == ["accepted"]
    assert await _events(client) == []


@pytest.mark.usefixtures("token_source")
async def test_same_entity_twice_is_duplicate_changed_entity_is_new(
    client: httpx.AsyncClient,
) -> None:
    payload = sample("books-invoice.json")
    a = await client.post("/hooks/books/acme", params={"token": TOKEN}, json=payload)
    b = await client.post("/hooks/books/acme", params={"token": TOKEN}, json=payload)
    payload["invoice"]["status"] = "paid"
    c = await client.post("/hooks/books/acme", params={"token": TOKEN}, json=payload)
    assert [x.json()["status"] for x in (a, b, c)] == ["accepted", "duplicate", "accepted"]
    assert len(await _events(client)) == 2


@pytest.mark.usefixtures("signed_source")
@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("secret", [SECRET, NEW_SECRET])
async def test_signature_hex_or_base64_with_either_secret(
    client: httpx.AsyncClient, encoding: str, secret: str
) -> None:
    body = json.dumps(sample("books-invoice.json")).encode()
    params = [("token", TOKEN), ("event", "updated")]
    digest = sign(secret, params, body)
    signature = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    r = await client.post(
        "/hooks/books/acme", params=params, content=body,
        headers={"Content-Type": "application/json", "X-Zoho-Webhook-Signature": signature},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    stored = (await client.get(f"/admin/requests/{r.json()['request_id']}", headers=ADMIN)).json()
    assert stored["verification"] == "token ok; signature ok"
    assert stored["headers"]["x-zoho-webhook-signature"] == "[redacted]"
    assert stored["query"] == "token=%5Bredacted%5D&event=updated"


@pytest.mark.usefixtures("signed_source")
async def test_signature_over_form_fields(client: httpx.AsyncClient) -> None:
    raw = (SAMPLES / "books-invoice-fields.form").read_bytes().strip()
    from urllib.parse import parse_qsl

    params = [("token", TOKEN), *parse_qsl(raw.decode())]
    r = await client.post(
        "/hooks/books/acme", params={"token": TOKEN}, content=raw,
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-Zoho-Webhook-Signature": sign_hex(SECRET, params, b"")},
    )  # fmt: skip
    assert r.status_code == 200, r.text


@pytest.mark.usefixtures("signed_source")
@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "X-Zoho-Webhook-Signature is missing"),
        ("0" * 64, "X-Zoho-Webhook-Signature does not match"),
        ("not a signature", "X-Zoho-Webhook-Signature does not match"),
    ],
)
async def test_bad_signatures_are_401(
    client: httpx.AsyncClient, signature: str | None, message: str
) -> None:
    headers = {"X-Zoho-Webhook-Signature": signature} if signature else {}
    r = await client.post(
        "/hooks/books/acme", params={"token": TOKEN}, json=sample("books-invoice.json"),
        headers=headers,
    )  # fmt: skip
    assert (r.status_code, r.json()["message"]) == (401, message)


async def test_signature_in_report_mode_is_recorded_not_enforced(
    client: httpx.AsyncClient,
) -> None:
    await _source(client, tokens=[TOKEN], secrets=[SECRET], signature_mode="report")
    r = await client.post(
        "/hooks/books/acme", params={"token": TOKEN}, json=sample("books-invoice.json"),
        headers={"X-Zoho-Webhook-Signature": "0" * 64},
    )  # fmt: skip
    assert r.status_code == 200
    stored = (await client.get(f"/admin/requests/{r.json()['request_id']}", headers=ADMIN)).json()
    assert stored["verification"] == "token ok; signature failed (report only)"


async def test_secret_only_source(client: httpx.AsyncClient) -> None:
    await _source(client, secrets=[SECRET])
    body = json.dumps(sample("books-invoice.json")).encode()
    good = await client.post(
        "/hooks/books/acme", content=body,
        headers={"Content-Type": "application/json",
                 "X-Zoho-Webhook-Signature": sign_hex(SECRET, [], body)},
    )  # fmt: skip
    unsigned = await client.post("/hooks/books/acme", content=body)
    assert (good.status_code, unsigned.status_code) == (200, 401)


async def test_unknown_and_disabled_sources_are_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/hooks/books/nope", json=sample("books-invoice.json"))
    assert (r.status_code, r.json()["message"]) == (404, "no Books source named 'nope'")
    await _source(client, tokens=[TOKEN])
    await client.patch("/admin/sources/acme", json={"enabled": False}, headers=ADMIN)
    r = await client.post("/hooks/books/acme", params={"token": TOKEN}, json={})
    assert r.status_code == 404


@pytest.mark.usefixtures("token_source")
async def test_payload_without_a_record_is_400_and_kept_whole(client: httpx.AsyncClient) -> None:
    body = {"note": "x" * 10_000}
    r = await client.post("/hooks/books/acme", params={"token": TOKEN}, json=body)
    assert r.status_code == 400
    assert "no Zoho Books record found" in r.json()["message"]
    [stored] = (
        await client.get("/admin/requests", params={"status": "rejected"}, headers=ADMIN)
    ).json()["items"]
    full = (await client.get(f"/admin/requests/{stored['id']}", headers=ADMIN)).json()
    # It passed verification, so nothing is cut: an operator can replay it by hand.
    assert full["body_truncated"] is False and json.loads(full["body"]) == body
