"""Issue 12, part 3, where the server's own limits matter: a real `serve` process over TCP,
on SQLite and PostgreSQL. Slow or endless request heads, silent and idle connections, a
body that never ends, the connection cap, and a bug met by a webhook: nothing in the
server's log but the exception's type."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx

from tests.support import ADMIN, BRIDGE_CMD, ROOT, bridge_env, crm_body, free_port

CRM_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"
SECRET_WORDS = "boom-secret-in-the-message"
TIMEOUT = 1.0  # BRIDGE_HEADER_TIMEOUT_SECONDS and BRIDGE_BODY_TIMEOUT_SECONDS here


@contextlib.contextmanager
def _serve(database_url: str, logs: Path, **extra: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = bridge_env(
        database_url, BRIDGE_SCHEDULER="false", BRIDGE_RECONCILE="false",
        BRIDGE_HEADER_TIMEOUT_SECONDS=str(TIMEOUT), BRIDGE_BODY_TIMEOUT_SECONDS=str(TIMEOUT),
        BRIDGE_KEEP_ALIVE_SECONDS="1", BRIDGE_LOG_FORMAT="json", **extra,
    )  # fmt: skip
    with logs.open("wb") as out:
        proc = subprocess.Popen(
            [*BRIDGE_CMD, "serve", "--port", str(port)], env=env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            else:
                raise AssertionError("serve did not become ready: " + logs.read_text())
            yield f"http://127.0.0.1:{port}", port
        finally:
            proc.terminate()
            proc.wait(timeout=15)


async def _exchange(port: int, data: bytes, *, then_wait: float = 5.0) -> tuple[bytes, float]:
    """Send `data` on a new connection and read until the server closes it: (what came
    back, seconds until the close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(data)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), then_wait)  # read() ends at EOF
        return received, time.monotonic() - started
    finally:
        writer.close()


async def _install_bug(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(database_url.split("///", 1)[1])) as conn:
            conn.execute(
                "CREATE TRIGGER boom BEFORE INSERT ON events "
                f"BEGIN SELECT RAISE(ABORT, '{SECRET_WORDS}'); END"
            )
            conn.commit()
        return
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(
            "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION '{SECRET_WORDS}'; END $$ LANGUAGE plpgsql; "
            "CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION boom()"
        )
    finally:
        await conn.close()


async def _remove_bug(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        return  # a file of this test's own
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("DROP TRIGGER boom ON events; DROP FUNCTION boom()")
    finally:
        await conn.close()


async def test_serve_bounds_slow_silent_and_endless_requests(
    database_url: str, tmp_path: Path
) -> None:
    logs = tmp_path / "serve.log"
    with _serve(database_url, logs) as (url, port):
        # Headers sent a byte at a time, never finished: 408, closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"POST /hooks/crm HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        while not answer and time.monotonic() - started < 5:
            with contextlib.suppress(ConnectionError):
                writer.write(b"X")
                await writer.drain()
            with contextlib.suppress(TimeoutError, ConnectionError):
                answer = await asyncio.wait_for(reader.read(65536), 0.1)
        waited = time.monotonic() - started
        with contextlib.suppress(ConnectionError):
            answer += await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"connection: close" in answer and b'"error":"request_timeout"' in answer
        assert TIMEOUT - 0.1 <= waited < TIMEOUT + 1.5

        # Connects and sends nothing: 408, closed.
        answer, waited = await _exchange(port, b"")
        assert answer.startswith(b"HTTP/1.1 408 ") and TIMEOUT - 0.1 <= waited < TIMEOUT + 1.5

        # A head that never ends, fast: 431 long before it is all sent, and closed (the
        # answer may be lost to the reset a close with unread data causes).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /hooks/crm HTTP/1.1\r\nHost: x\r\nX-Long: ")
        sent = 0
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # would be 64 MB
                writer.write(b"a" * 65536)
                await writer.drain()
                sent += 65536
        answer = b""
        with contextlib.suppress(ConnectionError):
            answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"", answer[:200]
        assert sent < 8 * 1024 * 1024

        # A body that never finishes on a webhook: 408 from the app, recorded.
        answer, waited = await _exchange(
            port, b"POST /hooks/crm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{\"channel_id\": \"1",
        )  # fmt: skip
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"connection: close" in answer and TIMEOUT - 0.1 <= waited < TIMEOUT + 1.5

        # A body that never finishes on a route that answers without reading it: answered,
        # then closed by the server, not kept open by the trickle.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
        started = time.monotonic()
        received = b""
        while not reader.at_eof() and time.monotonic() - started < 15:
            with contextlib.suppress(ConnectionError):
                writer.write(b"z")  # one byte a second postpones uvicorn's keep-alive
                await writer.drain()
            with contextlib.suppress(TimeoutError, ConnectionError):
                received += await asyncio.wait_for(reader.read(4096), 0.5)
        writer.close()
        assert received.startswith(b"HTTP/1.1 405 ")
        assert time.monotonic() - started < 2 * TIMEOUT + 3

        # An idle keep-alive connection is closed after BRIDGE_KEEP_ALIVE_SECONDS.
        answer, waited = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        # The server starts its 1 s timer before the client starts its clock: 0.1 s of slack.
        assert answer.startswith(b"HTTP/1.1 200 ") and 0.9 <= waited < 2.5

        # Headers over BRIDGE_MAX_HEADER_BYTES to a webhook: the app's 431, recorded.
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            r = await client.post("/hooks/crm", json=crm_body(), headers={"x-big": "b" * 17000})
            assert (r.status_code, r.headers["connection"]) == (431, "close")
            items = (await client.get("/admin/requests", headers=ADMIN)).json()["items"]
            assert [i["http_status"] for i in items] == [431, 408]
            # And the server still serves.
            assert (await client.get("/healthz")).status_code == 200
    assert "Traceback" not in logs.read_text()


async def test_serve_caps_connections(database_url: str, tmp_path: Path) -> None:
    with _serve(database_url, tmp_path / "serve.log", BRIDGE_MAX_CONNECTIONS="16") as (url, port):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(16)]
        await asyncio.sleep(0.1)
        answer, _ = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200


async def test_serve_logs_no_exception_message(database_url: str, tmp_path: Path) -> None:
    logs = tmp_path / "serve.log"
    with _serve(database_url, logs) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            r = await client.post(
                "/admin/channels/import", json={"channel_id": "1000000068001", "token": CRM_TOKEN},
                headers=ADMIN,
            )  # fmt: skip
            assert r.status_code == 201, r.text
            await _install_bug(database_url)
            try:
                r = await client.post("/hooks/crm", json=crm_body())
            finally:
                await _remove_bug(database_url)
            assert r.status_code == 500, r.text
            request_id = r.json()["request_id"]
            stored = (await client.get(f"/admin/requests/{request_id}", headers=ADMIN)).json()
            assert stored["http_status"] == 500
    text = logs.read_text()
    assert SECRET_WORDS not in text and CRM_TOKEN not in text and "Traceback" not in text
    [line] = [json.loads(x) for x in text.splitlines() if '"unexpected error"' in x]
    assert (line["area"], line["request_id"]) == ("hooks", request_id)
