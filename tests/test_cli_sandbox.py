"""`zoho-bridge sandbox` as a real process: what it prints works when pasted (the
`connections add` line, the Books loop), and names it cannot know are refused."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import BRIDGE_CMD, ROOT, bridge_env, free_port, serve_process


@pytest.fixture
def sandbox() -> Iterator[tuple[str, list[str]]]:
    """The sandbox on a free port; yields its URL and the lines it printed for org demo."""
    port = free_port()
    proc = subprocess.Popen([*BRIDGE_CMD, "sandbox", "--port", str(port)], cwd=ROOT,
                            env=bridge_env("sqlite+aiosqlite:///unused.db"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(8)]
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/_sandbox/counters", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, lines
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*BRIDGE_CMD, *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def test_the_printed_lines_work_when_pasted(
    sandbox: tuple[str, list[str]], database_url: str
) -> None:
    url, lines = sandbox
    org = json.loads(lines[0])
    assert org["name"] == "demo"
    paste = shlex.split(lines[2])
    assert paste[:4] == ["zoho-bridge", "connections", "add", "demo"]
    env = bridge_env(database_url)
    run(env, *paste[1:])
    assert "connection demo works" in run(env, "connections", "check", "demo").stdout

    # The Books loop, as the sandbox prints it: a source, a Books webhook rule pointed at
    # its URL, a record change that fires it.
    books = [line for line in lines if "Books loop" in line or "books" in line]
    assert any("/books-webhooks" in line for line in books)
    assert any("/books/invoices" in line for line in books)
    with serve_process(env) as served:
        source = json.loads(run({**env, "BRIDGE_PUBLIC_URL": served}, "sources", "add", "books",
                                "--json").stdout)  # fmt: skip
        run(env, "sources", "set", "books", "--connection", "demo")
        control = f"{url}/_sandbox/orgs/demo"
        rule = {"entity": "invoices", "url": source["hook_url_with_token"]}
        assert httpx.post(f"{control}/books-webhooks", json=rule).status_code == 201
        made = httpx.post(f"{control}/books/invoices", json={"fields": {"reference_number": "1"}})
        record_id = made.json()["id"]
        for _ in range(100):
            events = json.loads(run(env, "events", "list", "--json").stdout)
            if events:
                break
            time.sleep(0.1)
    assert [(e["source"], e["module"], e["record_id"]) for e in events] == [
        ("books", "invoice", record_id)
    ]


def test_unknown_names_are_refused(sandbox: tuple[str, list[str]]) -> None:
    url, _ = sandbox
    refused = httpx.post(f"{url}/_sandbox/orgs/demo/burst",
                         json={"crm": {"Lead": 3}, "books": {"invoicez": 1}})  # fmt: skip
    assert refused.status_code == 400
    message = refused.json()["error"]
    assert "'Lead' is not a module; did you mean 'Leads'?" in message
    assert "'invoicez' is not a Books entity; did you mean 'invoices'?" in message
    ok = httpx.post(f"{url}/_sandbox/orgs/demo/burst",
                    json={"crm": {"Leads": 1, "Custom_Projects": 1}, "books": {"invoice": 1}})  # fmt: skip
    assert ok.status_code == 201
    assert set(ok.json()["crm"]) == {"Leads", "Custom_Projects"}


def test_an_unknown_data_centre_is_refused() -> None:
    done = subprocess.run([*BRIDGE_CMD, "sandbox", "--org", "demo:xx"], cwd=ROOT,
                          env=bridge_env("sqlite+aiosqlite:///unused.db"), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "unknown data centre 'xx' (known: com, eu" in done.stderr
    assert "Traceback" not in done.stderr
