"""Issue 12, part 2: the last line of defence. A bug met by a request is answered with the
JSON error and a request id, recorded when it was a webhook, counted, and logged once with
the exception's type — never its message. The bugs are real ones the database provokes (a
trigger refusing a row, a row the code cannot read), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from tests.support import ADMIN, crm_body

CRM_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"
SECRET_WORDS = "boom-secret-in-the-message"


def _engine(client: httpx.AsyncClient) -> AsyncEngine:
    engine: AsyncEngine = client._transport.app.state.runtime.engine  # type: ignore[attr-defined]
    return engine


@pytest.fixture
async def ready(client: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": CRM_TOKEN, "source": "acme-eu"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    return client


@pytest.fixture
async def events_refused(ready: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A trigger that refuses every new event, with a message that must not be logged."""
    engine = _engine(ready)
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text(
                "CREATE TRIGGER boom BEFORE INSERT ON events "
                f"BEGIN SELECT RAISE(ABORT, '{SECRET_WORDS}'); END"
            ))  # fmt: skip
        else:
            await conn.execute(text(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{SECRET_WORDS}'; END $$ LANGUAGE plpgsql"
            ))  # fmt: skip
            await conn.execute(text(
                "CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION boom()"
            ))  # fmt: skip
    yield ready
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER boom" + ("" if engine.dialect.name == "sqlite"
                                                        else " ON events")))  # fmt: skip
        if engine.dialect.name != "sqlite":
            await conn.execute(text("DROP FUNCTION boom()"))


async def _unexpected(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families((await client.get("/metrics")).text)
    return {
        (s.labels["area"], s.labels["error_type"]): s.value
        for family in families
        for s in family.samples
        if s.name == "bridge_unexpected_errors_total"
    }


def _assert_one_clean_line(logs: list[dict[str, Any]], area: str, request_id: str) -> str:
    lines = [e for e in logs if e["event"] == "unexpected error"]
    assert len(lines) == 1, logs
    [line] = lines
    assert (line["area"], line["request_id"], line["log_level"]) == (area, request_id, "error")
    assert line["where"] and ".py:" in line["where"]
    assert SECRET_WORDS not in json.dumps(logs, default=str) and "bogus" not in line["error_type"]
    assert CRM_TOKEN not in json.dumps(logs, default=str)
    error_type: str = line["error_type"]
    return error_type


def _assert_internal_error(r: httpx.Response) -> str:
    assert r.status_code == 500, r.text
    body = r.json()
    assert (body["error"], sorted(body)) == ("internal_error", ["error", "message", "request_id"])
    assert SECRET_WORDS not in r.text
    request_id: str = body["request_id"]
    return request_id


async def test_a_webhook_that_meets_a_bug_is_answered_recorded_counted_and_logged(
    events_refused: httpx.AsyncClient,
) -> None:
    client = events_refused
    before = await _unexpected(client)
    with capture_logs() as logs:
        r = await client.post("/hooks/crm", json=crm_body())
    request_id = _assert_internal_error(r)
    error_type = _assert_one_clean_line(logs, "hooks", request_id)
    assert error_type in ("IntegrityError", "RaiseError")
    # Recorded, under the id it was answered with, with the token blanked.
    stored = (await client.get(f"/admin/requests/{request_id}", headers=ADMIN)).json()
    assert (stored["status"], stored["http_status"], stored["kind"]) == ("rejected", 500, "crm")
    assert stored["reason"] == f"internal error ({error_type}); see the bridge's log"
    assert CRM_TOKEN not in json.dumps(stored) and SECRET_WORDS not in json.dumps(stored)
    after = await _unexpected(client)
    assert after[("hooks", error_type)] - before.get(("hooks", error_type), 0) == 1
    r = await client.get("/metrics")
    assert 'bridge_webhook_requests_total{kind="crm",outcome="failed"}' in r.text


async def _unreadable_event(client: httpx.AsyncClient) -> None:
    """An events row whose operation the code does not know: reading it raises."""
    async with _engine(client).begin() as conn:
        await conn.execute(text(
            "INSERT INTO events (id, product, source, module, operation, record_id, "
            "occurred_at, received_at, origin, dedup_key, data) VALUES ('01JD3Q6W8M6V7J4K3Z5X2N1B0A', "
            "'crm', 'acme', 'Leads', 'bogus', '1', '2024-06-11 14:45:26', '2024-06-11 14:45:26', "
            "'webhook', 'k', '{}')"
        ))  # fmt: skip


async def test_an_admin_request_that_meets_a_bug_gets_the_json_error(
    client: httpx.AsyncClient,
) -> None:
    await _unreadable_event(client)
    before = await _unexpected(client)
    with capture_logs() as logs:
        r = await client.get("/admin/events", headers=ADMIN)
    request_id = _assert_internal_error(r)
    assert _assert_one_clean_line(logs, "admin", request_id) == "ValueError"
    assert (await _unexpected(client))[("admin", "ValueError")] - before.get(
        ("admin", "ValueError"), 0
    ) == 1


async def test_a_pull_consumer_that_meets_a_bug_gets_the_json_error(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/admin/subscriptions", json={"name": "reader", "from_start": True}, headers=ADMIN
    )
    token = r.json()["token"]
    await _unreadable_event(client)
    with capture_logs() as logs:
        r = await client.get(
            "/v1/subscriptions/reader/events", headers={"Authorization": f"Bearer {token}"}
        )
    request_id = _assert_internal_error(r)
    assert _assert_one_clean_line(logs, "v1", request_id) == "ValueError"
    assert token not in json.dumps(logs, default=str)


async def test_nul_in_an_admin_path_or_query_is_400(client: httpx.AsyncClient) -> None:
    for url in ("/admin/sources/a%00b", "/admin/events?source=a%00b", "/admin/channels/1%00"):
        r = await client.get(url, headers=ADMIN)
        assert (r.status_code, r.json()["error"]) == (400, "bad_request"), url


@pytest.mark.parametrize(
    ("url", "method", "body"),
    [
        ("/admin/events?cursor=99999999999999999999999", "GET", None),
        ("/admin/events?cursor=%C2%B2", "GET", None),  # "²": isdigit() says yes
        ("/admin/events?limit=" + "9" * 5000, "GET", None),
        ("/admin/events?since=0001-01-01T00:00:00%2B01:00", "GET", None),
        ("/admin/subscriptions/x/rewind", "POST", b'{"seq": 99999999999999999999}'),
        ("/admin/subscriptions", "POST", b'{"name": "a\\u0000b"}'),
        ("/admin/subscriptions", "POST", b'{"name": "\\ud800"}'),
        ("/admin/sources", "POST", b'{"name": "acme", "tokens": ["\\u0000' + b"x" * 20 + b'"]}'),
        ("/admin/replay", "POST", b'{"since": "0001-01-01T00:00:00+01:00"}'),
    ],
)
async def test_admin_inputs_out_of_range_are_400(
    client: httpx.AsyncClient, url: str, method: str, body: bytes | None
) -> None:
    r = await client.request(method, url, content=body, headers=ADMIN)
    assert (r.status_code, r.json()["error"]) == (400, "bad_request"), r.text


def test_the_server_error_log_keeps_only_the_exception_type() -> None:
    """uvicorn logs an exception that escapes the app on `uvicorn.error`, traceback and
    all; configure_logging puts this filter on that logger, where uvicorn's dictConfig
    (which replaces handlers) keeps it. Shown here on a logger of the test's own."""
    import logging.config

    from bridge.logs import ExceptionTypeOnly

    name = "tests.hardening.uvicorn-error"
    logger = logging.getLogger(name)
    logger.addFilter(ExceptionTypeOnly())
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "loggers": {name: {"level": "INFO", "handlers": [], "propagate": False}},
    })  # fmt: skip
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger.addHandler(Keep())
    try:
        raise ValueError(f"{SECRET_WORDS} {CRM_TOKEN}")
    except ValueError as exc:
        logger.error("Exception in ASGI application\n", exc_info=exc)
        logger.error("Exception in 'lifespan' protocol\n", exc_info=exc)
    request, lifespan = seen
    assert request.getMessage() == (
        "Exception in ASGI application (ValueError; message not logged)"
    )
    assert request.exc_info is None and request.exc_text is None
    assert lifespan.exc_info is not None  # start-up failures keep their traceback
