"""The admin API: auth, sources, channels, events and requests with filters and cursors."""

from __future__ import annotations

import httpx
import pytest

from bridge.settings import Settings
from bridge.web.app import create_app
from tests.support import ADMIN, ADMIN_TOKEN, crm_body, sample

CRM_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"


async def test_admin_is_403_when_no_token_is_configured(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"admin_token": None}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/admin/events", headers=ADMIN)
    assert r.status_code == 403
    assert "set BRIDGE_ADMIN_TOKEN" in r.json()["message"]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x", "Bearer", "junk"],
)
async def test_admin_refuses_a_wrong_token(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for path in ("/admin/events", "/admin/sources", "/admin/requests", "/admin/channels"):
        r = await client.get(path, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
    r = await client.post("/admin/sources", json={"name": "x"}, headers=headers)
    assert r.status_code == 401


async def test_create_source_generates_a_token_shown_once(client: httpx.AsyncClient) -> None:
    r = await client.post("/admin/sources", json={"name": "acme-books"}, headers=ADMIN)
    assert r.status_code == 201
    created = r.json()
    assert created["hook_url"] == "http://bridge.test/hooks/books/acme-books"
    assert created["hook_url_with_token"] == f"{created['hook_url']}?token={created['token']}"
    listed = (await client.get("/admin/sources", headers=ADMIN)).json()["items"]
    assert listed == [
        {k: v for k, v in created.items() if k not in ("token", "hook_url_with_token")}
    ]
    hook = await client.post(created["hook_url_with_token"], json=sample("books-invoice.json"))
    assert hook.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "bad name"}, 400, "name must be"),
        ({"name": ""}, 400, "name must be"),
        ({"name": "x", "tokens": []}, 400, "at least one verification method"),
        ({"name": "x", "tokens": ["short"]}, 400, "at least 12 characters"),
        ({"name": "x", "secrets": ["has-dash-123456"]}, 400, "12-50 letters and digits"),
        ({"name": "x", "secrets": ["Secret0123456789"], "signature_mode": "report"}, 400,
         "must be enforced"),
        ({"name": "x", "signature_mode": "maybe"}, 400, "'enforce' or 'report'"),
        ({"tokens": ["abc"]}, 400, "name: Field required"),
        ({"name": 5}, 400, "name: Input should be a valid string"),
    ],
)  # fmt: skip
async def test_create_source_validation(
    client: httpx.AsyncClient, body: dict[str, object], status: int, message: str
) -> None:
    r = await client.post("/admin/sources", json=body, headers=ADMIN)
    assert r.status_code == status
    assert message in r.json()["message"]
    assert "abc" not in r.json()["message"]  # values are never echoed


async def test_admin_body_must_be_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/admin/sources", content=b"{nope", headers=ADMIN)
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["message"]


async def test_duplicate_source_is_409(client: httpx.AsyncClient) -> None:
    body = {"name": "acme", "tokens": ["books-token-0123456789"]}
    assert (await client.post("/admin/sources", json=body, headers=ADMIN)).status_code == 201
    r = await client.post("/admin/sources", json=body, headers=ADMIN)
    assert (r.status_code, r.json()["message"]) == (409, "a source named 'acme' already exists")


async def test_secret_needs_the_secret_key(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"secret_key": None}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post(
                "/admin/sources", json={"name": "a", "secrets": ["Secret0123456789"]},
                headers=ADMIN,
            )  # fmt: skip
    assert r.status_code == 400
    assert "BRIDGE_SECRET_KEY is not set" in r.json()["message"]


async def test_patch_source_rotates_tokens(client: httpx.AsyncClient) -> None:
    old, new = "books-token-old-000000", "books-token-new-111111"
    await client.post("/admin/sources", json={"name": "acme", "tokens": [old]}, headers=ADMIN)
    payload = sample("books-invoice.json")
    r = await client.patch("/admin/sources/acme", json={"tokens": [old, new]}, headers=ADMIN)
    assert r.json()["tokens"] == 2
    assert (await client.post(f"/hooks/books/acme?token={new}", json=payload)).status_code == 200
    await client.patch("/admin/sources/acme", json={"tokens": [new]}, headers=ADMIN)
    assert (await client.post(f"/hooks/books/acme?token={old}", json=payload)).status_code == 401
    r = await client.patch("/admin/sources/acme", json={"tokens": []}, headers=ADMIN)
    assert r.status_code == 400
    r = await client.patch("/admin/sources/nope", json={"enabled": False}, headers=ADMIN)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"channel_id": "abc", "token": CRM_TOKEN}, "decimal channel id"),
        ({"channel_id": "1", "token": "t" * 51}, "at most 50"),
        ({"channel_id": "1", "token": "short"}, "at least 12"),
        ({"channel_id": "1", "token": CRM_TOKEN, "source": "a b"}, "name must be"),
        ({"channel_id": "1"}, "token: Field required"),
    ],
)
async def test_import_channel_validation(
    client: httpx.AsyncClient, body: dict[str, object], message: str
) -> None:
    r = await client.post("/admin/channels/import", json=body, headers=ADMIN)
    assert r.status_code == 400
    assert message in r.json()["message"]


async def test_channels_list_and_show(client: httpx.AsyncClient) -> None:
    body = {"channel_id": 1000000068001, "token": CRM_TOKEN, "events": ["Leads.all"]}
    created = await client.post("/admin/channels/import", json=body, headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["managed"] is False
    again = await client.post("/admin/channels/import", json=body, headers=ADMIN)
    assert again.status_code == 409
    [listed] = (await client.get("/admin/channels", headers=ADMIN)).json()["items"]
    assert listed == {**created.json(), "renewal": None}  # imported: no renewal state
    assert CRM_TOKEN not in str(listed)
    assert (await client.get("/admin/channels/42", headers=ADMIN)).status_code == 404
    r = await client.post("/admin/channels/42/tokens", json={"token": CRM_TOKEN}, headers=ADMIN)
    assert r.status_code == 404


@pytest.fixture
async def with_events(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": CRM_TOKEN, "source": "acme-eu"},
        headers=ADMIN,
    )
    await client.post("/admin/sources", json={"name": "books", "tokens": ["b" * 20]}, headers=ADMIN)
    for i in range(7):
        await client.post("/hooks/crm", json=crm_body(server_time=i, ids=[f"L{i}"]))
    await client.post("/hooks/crm", json=sample("crm-delete.json"))
    await client.post(f"/hooks/books/books?token={'b' * 20}&event=created",
                      json=sample("books-invoice.json"))  # fmt: skip
    return client


async def test_events_filters(with_events: httpx.AsyncClient) -> None:
    async def ids(**params: str) -> list[str]:
        r = await with_events.get("/admin/events", params=params, headers=ADMIN)
        assert r.status_code == 200, r.text
        return [e["record_id"] for e in r.json()["items"]]

    assert len(await ids()) == 9
    assert await ids(source="books") == ["4372460000000650034"]
    assert await ids(module="Deals") == ["5725767000003000200"]
    assert await ids(operation="deleted") == ["5725767000003000200"]
    assert await ids(record_id="L3") == ["L3"]
    assert len(await ids(origin="webhook", product="crm")) == 8
    assert await ids(origin="reconciliation") == []
    assert len(await ids(since="2000-01-01T00:00:00Z")) == 9
    assert await ids(until="2000-01-01T00:00:00Z") == []


async def test_the_events_of_one_delivery(client: httpx.AsyncClient) -> None:
    await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": CRM_TOKEN},
        headers=ADMIN,
    )
    several = (await client.post("/hooks/crm", json=sample("crm-update-several-ids.json"))).json()
    one = (await client.post("/hooks/crm", json=crm_body(ids=["L9"]))).json()
    r = await client.get("/admin/events", params={"request_id": several["request_id"]},
                         headers=ADMIN)  # fmt: skip
    assert sorted(e["id"] for e in r.json()["items"]) == sorted(several["event_ids"])
    assert {e["request_id"] for e in r.json()["items"]} == {several["request_id"]}
    r = await client.get("/admin/events", params={"request_id": one["request_id"]}, headers=ADMIN)
    assert [e["record_id"] for e in r.json()["items"]] == ["L9"]
    r = await client.get("/admin/events", params={"request_id": "01NOSUCHREQUEST"}, headers=ADMIN)
    assert r.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"operation": "eaten"}, "operation must be one of"),
        ({"since": "yesterday"}, "since must be an ISO 8601 time"),
        ({"since": "2025-01-01T00:00:00"}, "must include a UTC offset"),
        ({"limit": "0"}, "limit must be"),
        ({"limit": "x"}, "limit must be"),
        ({"cursor": "-1"}, "cursor must be a whole number"),
    ],
)
async def test_events_bad_filters(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    r = await client.get("/admin/events", params=params, headers=ADMIN)
    assert r.status_code == 400
    assert message in r.json()["message"]


async def test_events_cursor_pages_through_everything_once(with_events: httpx.AsyncClient) -> None:
    seen: list[int] = []
    params = {"limit": "4"}
    while True:
        page = (await with_events.get("/admin/events", params=params, headers=ADMIN)).json()
        seen.extend(e["seq"] for e in page["items"])
        if page["next"] is None:
            break
        params = {"limit": "4", "cursor": page["next"]}
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 9


async def test_event_by_id_and_by_seq(with_events: httpx.AsyncClient) -> None:
    [event] = (await with_events.get("/admin/events?limit=1", headers=ADMIN)).json()["items"]
    by_id = (await with_events.get(f"/admin/events/{event['id']}", headers=ADMIN)).json()
    by_seq = (await with_events.get(f"/admin/events/{event['seq']}", headers=ADMIN)).json()
    assert by_id == by_seq == event
    assert (await with_events.get("/admin/events/NOPE", headers=ADMIN)).status_code == 404


async def test_requests_by_status(with_events: httpx.AsyncClient) -> None:
    await with_events.post("/hooks/crm", json=crm_body(server_time=0, ids=["L0"]))
    await with_events.post("/hooks/crm", json=crm_body(token="nope-nope-nope-nope"))
    counts = {}
    for status in ("accepted", "duplicate", "rejected"):
        r = await with_events.get("/admin/requests", params={"status": status}, headers=ADMIN)
        counts[status] = len(r.json()["items"])
    assert counts == {"accepted": 9, "duplicate": 1, "rejected": 1}
    r = await with_events.get("/admin/requests", params={"status": "weird"}, headers=ADMIN)
    assert r.status_code == 400
    assert (await with_events.get("/admin/requests/xyz", headers=ADMIN)).status_code == 404


async def test_openapi_lists_the_surface(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for path in ("/hooks/crm", "/hooks/books/{source}", "/admin/events", "/readyz"):
        assert path in doc["paths"]
    assert set(doc["paths"]["/hooks/books/{source}"]) == {"post", "put", "delete"}
    assert "413" in doc["paths"]["/hooks/crm"]["post"]["responses"]


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.json() == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "schema": "current",
            "secret_key": "ok",
            "sinks": "ok",
            "connections": "ok",
            "channels": "ok",
            "reconciliation": "ok",
        },
    }
    await client.post("/hooks/crm", json=crm_body())
    metrics = (await client.get("/metrics")).text
    assert 'bridge_webhook_requests_total{kind="crm",outcome="rejected"}' in metrics
    assert "bridge_write_batch_size_bucket" in metrics


async def test_names_with_a_trailing_newline_are_refused(client: httpx.AsyncClient) -> None:
    """`$` also matches before a final newline: names are checked whole, or `acme\\n`
    became a source no webhook path could ever reach."""
    answer = await client.post("/admin/sources", json={"name": "acme\n"}, headers=ADMIN)
    assert answer.status_code == 400
    assert "name must be" in answer.json()["message"]
