"""Helpers shared by the tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import subprocess
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SECRET_KEY = "2mF3zqF4m0s6a3Xw5aZ9g8oYJb7Q0hCwq3R1n4P6e8U="  # a Fernet key, for tests only
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop (for sync, session-scoped setup)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def crm_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "server_time": 1718117126473,
        "query_params": {},
        "module": "Leads",
        "resource_uri": "https://www.zohoapis.com/crm/v2/Leads",
        "ids": ["5725767000003000064"],
        "affected_fields": [],
        "operation": "insert",
        "channel_id": "1000000068001",
        "token": "TOKEN_FOR_VERIFICATION_OF_1000000068001",
    }
    body.update(overrides)
    return body


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


BRIDGE_CMD = [__import__("sys").executable, "-m", "bridge"]
ROOT = Path(__file__).resolve().parent.parent


def bridge_env(database_url: str, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(
        {
            "BRIDGE_DATABASE_URL": database_url,
            "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
            "BRIDGE_SECRET_KEY": SECRET_KEY,
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def serve_process(env: dict[str, str], *args: str) -> Iterator[str]:
    """`zoho-bridge serve ARGS` as a real process on a free port; yields its URL once ready."""
    with serve_running(env, *args) as (_, url):
        yield url


@contextlib.contextmanager
def serve_running(
    env: dict[str, str], *args: str, session: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`serve_process`, yielding the process too (to signal it, or find its children);
    `session`: in a session and process group of its own, as in a terminal of its own."""
    import time

    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [*BRIDGE_CMD, "serve", "--port", str(port), *args], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=session,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("serve did not become ready")
        yield proc, url
    finally:
        proc.terminate()  # nothing when the test has ended it already
        proc.wait(timeout=15)


async def until(check: Any, timeout: float = 20.0) -> Any:
    """Await `check()` every 50 ms until it gives something true, and return that;
    AssertionError after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)
