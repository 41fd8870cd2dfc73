"""Issue 12, part 1: every reproducer answers a 4xx or a 2xx, is recorded, and behaves the
same on SQLite and PostgreSQL. Record data holding NULs or lone surrogates is stored (escaped,
see the README), identifiers holding them are refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support import ADMIN, crm_body, sample

TOKEN = "books-token-0123456789"
CRM_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"
SECRET = "BooksSecret0123456789"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def ready(client: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await client.post("/admin/sources", json={"name": "acme", "tokens": [TOKEN]}, headers=ADMIN)
    assert r.status_code == 201, r.text
    r = await client.post(
        "/admin/sources", json={"name": "signed", "tokens": [TOKEN], "secrets": [SECRET]},
        headers=ADMIN,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": CRM_TOKEN, "source": "acme-eu"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    return client


async def _requests(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/admin/requests", params={"limit": 1000}, headers=ADMIN)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _events(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/admin/events", headers=ADMIN)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _post_crm(client: httpx.AsyncClient, body: bytes | str) -> httpx.Response:
    return await client.post("/hooks/crm", content=body, headers=JSON)


def _crm(**overrides: Any) -> str:
    # ensure_ascii (the default) writes a lone surrogate as the escape "\ud800".
    return json.dumps(crm_body(**overrides))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (body, status, words the message must hold)
CRM_REFUSED = {
    "nested 1,025 levels": (
        _crm(affected_values=[{"record_id": "1", "values": {"x": json.loads("[]")}}]).replace(
            '"x": []', '"x": ' + _nested(1025)
        ),
        400,
        "nested deeper than",
    ),
    "nested 30,000 levels": ('{"a":' + _nested(30_000) + "}", 400, "nested deeper than"),
    "nested 200 levels": (
        _crm().replace('"query_params": {}', '"query_params": ' + _nested(200)),
        400,
        "nested deeper than",
    ),
    "integer of 4,301 digits": (
        _crm().replace('"query_params": {}', '"query_params": ' + "7" * 4301),
        400,
        "number",
    ),
    "server_time of 5,000 digits": (
        _crm().replace("1718117126473", "9" * 5000),
        400,
        "number",
    ),
    "NaN": (_crm().replace('"query_params": {}', '"query_params": NaN'), 400, "not valid JSON"),
    "1e400": (_crm().replace('"query_params": {}', '"query_params": 1e400'), 400, "number"),
    "lone surrogate as channel_id": (_crm(channel_id="\ud800"), 400, "channel_id"),
    "NUL in channel_id": (_crm(channel_id="100000\u00000068001"), 400, "channel_id"),
    "lone surrogate as token": (_crm(token="\udc00" + CRM_TOKEN), 400, "token"),
    "lone surrogate in module": (_crm(module="Le\ud800ads"), 400, "module"),
    "NUL in module": (_crm(module="Le\u0000ads"), 400, "module"),
    "lone surrogate in a record id": (_crm(ids=["57257670\udfff00003000064"]), 400, "id"),
    "NUL in a record id": (_crm(ids=["5725767000003000064\u0000"]), 400, "id"),
    "NUL in operation": (_crm(operation="ins\u0000ert"), 400, "operation"),
    "operation of 300 characters": (_crm(operation="x" * 300), 400, "operation"),
    "server_time in year 10000": (_crm(server_time=253402300800000), 400, "server_time"),
    "server_time far beyond": (_crm(server_time=10**19), 400, "server_time"),
    "server_time true": (_crm(server_time=True), 400, "server_time"),
}


@pytest.mark.parametrize("case", list(CRM_REFUSED))
async def test_crm_reproducers_are_400_and_recorded(ready: httpx.AsyncClient, case: str) -> None:
    body, status, words = CRM_REFUSED[case]
    r = await _post_crm(ready, body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == "bad_request"
    assert words in r.json()["message"], r.json()
    [stored] = await _requests(ready)
    assert (stored["status"], stored["http_status"]) == ("rejected", status)
    assert words in stored["reason"]
    assert await _events(ready) == []


async def test_a_known_channel_with_a_long_operation_in_bounds_is_stored(
    ready: httpx.AsyncClient,
) -> None:
    r = await _post_crm(ready, _crm(operation="o" * 64, server_time=253402300799999))
    assert r.status_code == 200, r.text
    [event] = await _events(ready)
    assert event["operation"] == "changed" and event["data"]["operation"] == "o" * 64
    assert event["occurred_at"].startswith("9999-12-31T23:59:59")


async def test_an_overlong_channel_id_is_404_without_a_lookup(ready: httpx.AsyncClient) -> None:
    r = await _post_crm(ready, _crm(channel_id="1" * 65))
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    [stored] = await _requests(ready)
    assert stored["http_status"] == 404


async def _subscriber_data(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """What a pull subscriber receives: the envelopes' `data`."""
    r = await client.post(
        "/admin/subscriptions", json={"name": "reader", "from_start": True}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    r = await client.get("/v1/subscriptions/reader/events", headers=auth)
    assert r.status_code == 200, r.text
    return [item["data"] for item in r.json()["items"]]


async def test_nul_and_surrogates_in_crm_values_are_stored_escaped(
    ready: httpx.AsyncClient,
) -> None:
    values = {"Description": "a\u0000b", "Last\u0000Name": "\ud800x\udfff", "ok": "\U0001f600"}
    body = _crm(
        affected_values=[{"record_id": "5725767000003000064", "values": values}],
        affected_fields=[{"5725767000003000064": ["Description", "Last\u0000Name"]}],
    )
    r = await _post_crm(ready, body)
    assert r.status_code == 200, r.text
    expected_values = {
        "Description": "a\\u0000b",
        "Last\\u0000Name": "\\ud800x\\udfff",
        "ok": "\U0001f600",  # a valid pair is a character like any other
    }
    [event] = await _events(ready)
    assert event["data"]["values"] == expected_values
    assert event["data"]["affected_fields"] == ["Description", "Last\\u0000Name"]
    [data] = await _subscriber_data(ready)
    assert data["values"] == expected_values
    # The delivery itself is kept byte for byte.
    [stored] = await _requests(ready)
    full = (await ready.get(f"/admin/requests/{stored['id']}", headers=ADMIN)).json()
    assert full["status"] == "accepted" and "\\u0000" in full["body"]


async def test_nul_and_surrogates_in_a_books_record_are_stored_escaped(
    ready: httpx.AsyncClient,
) -> None:
    invoice = sample("books-invoice.json")
    invoice["invoice"]["notes"] = "line\u0000two"
    invoice["invoice"]["terms"] = "half \ud83d pair"
    invoice["invoice"]["custom\u0000field"] = {"deep": ["\udc00", "\u0000"]}
    body = json.dumps(invoice)
    r = await ready.post("/hooks/books/acme", params={"token": TOKEN}, content=body, headers=JSON)
    assert r.status_code == 200, r.text
    [event] = await _events(ready)
    assert event["record_id"] == "4372460000000650034"
    assert event["data"]["notes"] == "line\\u0000two"
    assert event["data"]["terms"] == "half \\ud83d pair"
    assert event["data"]["custom\\u0000field"] == {"deep": ["\\udc00", "\\u0000"]}
    [data] = await _subscriber_data(ready)
    assert data == event["data"]
    # The same record again is a duplicate: the key is computed from the stored form.
    again = await ready.post(
        "/hooks/books/acme", params={"token": TOKEN}, content=body, headers=JSON
    )
    assert again.json()["status"] == "duplicate"


async def test_nul_in_a_books_form_record_is_stored_escaped(ready: httpx.AsyncClient) -> None:
    form = "invoice_id=4372460000000650034&notes=a%00b&status=sent"
    r = await ready.post(
        "/hooks/books/acme", params={"token": TOKEN, "entity": "invoice"}, content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    [event] = await _events(ready)
    assert event["data"]["notes"] == "a\\u0000b"


BOOKS_REFUSED = {
    "NUL in the entity": (
        {"inv\u0000oice": {"inv\u0000oice_id": "1"}},
        {},
        400,
        "entity",
    ),
    "lone surrogate in the entity": ({"inv\ud800": {"inv\ud800_id": "1"}}, {}, 400, "entity"),
    "NUL in the record id": ({"invoice": {"invoice_id": "43\u000072"}}, {}, 400, "id"),
    "lone surrogate in the record id": ({"invoice": {"invoice_id": "\udbff"}}, {}, 400, "id"),
    "NUL in ?entity=": ({"invoice": {"invoice_id": "1"}}, {"entity": "inv\u0000"}, 400, "entity"),
    "nested 1,025 levels": (
        {"invoice": {"invoice_id": "1", "x": "NEST"}},
        {},
        400,
        "nested deeper than",
    ),
    "integer of 4,301 digits": (
        {"invoice": {"invoice_id": "1", "x": "BIG"}},
        {},
        400,
        "number",
    ),
    "record id of 101 characters": ({"invoice": {"invoice_id": "9" * 101}}, {}, 400, "100"),
}


@pytest.mark.parametrize("case", list(BOOKS_REFUSED))
async def test_books_reproducers_are_400_and_recorded_whole(
    ready: httpx.AsyncClient, case: str
) -> None:
    payload, params, status, words = BOOKS_REFUSED[case]
    body = json.dumps(payload).replace('"NEST"', _nested(1025)).replace('"BIG"', "1" * 4301)
    r = await ready.post(
        "/hooks/books/acme", params={"token": TOKEN, **params}, content=body, headers=JSON
    )
    assert r.status_code == status, r.text
    assert words in r.json()["message"], r.json()
    [stored] = await _requests(ready)
    assert (stored["status"], stored["http_status"]) == ("rejected", status)
    assert stored["verification"] == "token ok"
    assert stored["body_size"] == len(body.encode()) and stored["body_truncated"] is False


@pytest.mark.parametrize(
    "path", ["/hooks/books/pl%00ain", "/hooks/books/pl%ED%A0%80ain", "/hooks/books/" + "s" * 65,
             "/hooks/books/%F0%9F%98%80", "/hooks/books/acme%0A"],
)  # fmt: skip
async def test_impossible_source_names_are_404_and_recorded(
    ready: httpx.AsyncClient, path: str
) -> None:
    r = await ready.post(path, params={"token": TOKEN}, json=sample("books-invoice.json"))
    assert (r.status_code, r.json()["error"]) == (404, "not_found"), r.text
    [stored] = await _requests(ready)
    assert (stored["status"], stored["http_status"], stored["source"]) == ("rejected", 404, None)
    assert stored["path"].startswith("/hooks/books/")
    assert "\x00" not in stored["path"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{not json"),
        ("application/json", b"\xff\xfe"),
        ("application/xml", b"<invoice/>"),
        ("multipart/form-data; boundary=b", b"--b--"),
        ("application/json", b'{"x": ' + b"[" * 2000 + b"]" * 2000 + b"}"),
        ("application/json", b'{"invoice": {"invoice_id": "1"}}'),
        ("application/x-www-form-urlencoded", b"a=%ff%fe&b=\xff"),
    ],
)
@pytest.mark.parametrize("source", ["acme", "signed"])
async def test_books_verifies_before_parsing(
    ready: httpx.AsyncClient, content_type: str, body: bytes, source: str
) -> None:
    r = await ready.post(
        f"/hooks/books/{source}", params={"token": "wrong-token-000000", "event": "bogus"},
        content=body, headers={"Content-Type": content_type},
    )  # fmt: skip
    assert (r.status_code, r.json()["message"]) == (401, "token does not match")
    # A right token but no signature: still 401 whatever the body.
    r = await ready.post(
        "/hooks/books/signed", params={"token": TOKEN}, content=body,
        headers={"Content-Type": content_type},
    )  # fmt: skip
    assert (r.status_code, r.json()["message"]) == (401, "X-Zoho-Webhook-Signature is missing")
    assert [s["http_status"] for s in await _requests(ready)] == [401, 401]


@pytest.mark.parametrize("ids", [[-157529816910624522240], [2**63], [-(2**63) - 1]])
async def test_outbox_retry_ids_beyond_64_bits_are_400(
    client: httpx.AsyncClient, ids: list[int]
) -> None:
    r = await client.post("/admin/outbox/retry", json={"ids": ids}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request" and "ids" in r.json()["message"]


async def test_outbox_retry_ids_in_bounds_are_fine(client: httpx.AsyncClient) -> None:
    r = await client.post("/admin/outbox/retry", json={"ids": [2**63 - 1, 1]}, headers=ADMIN)
    assert (r.status_code, r.json()) == (200, {"retried": 0})


async def test_admin_json_bodies_are_bounded_too(client: httpx.AsyncClient) -> None:
    for body in (b"[" * 5000 + b"]" * 5000, b'{"ids": [' + b"1" * 5000 + b"]}"):
        r = await client.post("/admin/outbox/retry", content=body, headers=ADMIN)
        assert (r.status_code, r.json()["error"]) == (400, "bad_request"), r.text


@pytest.mark.parametrize("modified", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
async def test_books_times_beyond_the_calendar_in_utc_are_not_used(
    ready: httpx.AsyncClient, modified: str
) -> None:
    invoice = sample("books-invoice.json")
    invoice["invoice"]["last_modified_time"] = modified
    r = await ready.post("/hooks/books/acme", params={"token": TOKEN}, json=invoice)
    assert r.status_code == 200, r.text
    [event] = await _events(ready)
    assert event["occurred_at"] == event["received_at"]  # as for a missing time
    assert event["data"]["last_modified_time"] == modified
