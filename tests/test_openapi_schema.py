"""schemathesis over the whole OpenAPI document, against `serve` on SQLite, with the admin
token: no answer of 500 or more, no status, content type, header or body the document does
not describe, invalid input refused, a method a path does not take answered 405 with the
right `Allow`, and no operation that works without its token.

Every check but `positive_data_acceptance` runs: that one wants every input the schema
allows accepted, and the bridge refuses some for reasons no schema states (a name already
taken, a connection that does not exist, BRIDGE_PUBLIC_URL unset).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.sinks.support import closed_port_socket
from tests.support import ADMIN, ADMIN_TOKEN, bridge_env, crm_body, serve_process

NAME = "stx"  # a source, a connection and a subscription, so every {name} finds one
SOURCE_TOKEN = "st-source-token-0123456789"
CHANNEL, CHANNEL_TOKEN = "1000000068001", "TOKEN_FOR_VERIFICATION_OF_1000000068001"
ZOHO_CALLS = (
    r"^/admin/(connections/\{name\}/check|channels(/\{channel_id\}/(renew|rotate|disable))?)$"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    env = bridge_env(f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}",
                     BRIDGE_SCHEDULER="false", BRIDGE_RECONCILE="false",
                     BRIDGE_LOG_LEVEL="error")  # fmt: skip
    with serve_process(env) as url:
        yield url


def _seed(url: str, zoho_port: int) -> dict[str, str]:
    """One of each object, so that operations on `{name}`, `{channel_id}`, `{event_id}`
    ... reach their handlers' logic and not only a 404. Returns the ids to test with."""
    with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as http:

        def post(path: str, body: dict[str, object]) -> dict[str, object]:
            answer = http.post(path, json=body)
            assert answer.status_code in (201, 202), answer.text
            found: dict[str, object] = answer.json()
            return found

        post("/admin/sources", {"name": NAME, "tokens": [SOURCE_TOKEN]})
        post("/admin/channels/import", {"channel_id": CHANNEL, "token": CHANNEL_TOKEN})
        # Zoho "answers" on a refused port: checks and channel calls meet a 502.
        post("/admin/connections", {"name": NAME, "dc": "com", "client_id": "1000.ST",
                                    "client_secret": "st-secret", "refresh_token": "1000.st",
                                    "accounts_url": f"http://127.0.0.1:{zoho_port}",
                                    "api_domain": f"http://127.0.0.1:{zoho_port}"})  # fmt: skip
        token = str(post("/admin/subscriptions", {"name": NAME, "from_start": True})["token"])
        watch = post("/admin/reconciliation/watches",
                     {"connection": NAME, "product": "crm", "module": "Leads"})  # fmt: skip
        delivered = http.post("/hooks/crm", json=crm_body(ids=["st-1", "st-2"]))
        assert delivered.status_code == 200, delivered.text
        request_id = delivered.json()["request_id"]
        run = post("/admin/reconciliation/runs", {"connection": NAME})  # fails: no Zoho
    return {"subscription_token": token, "watch_id": str(watch["id"]),
            "request_id": request_id, "run_id": str(run["id"])}  # fmt: skip


def _config(path: Path, seeded: dict[str, str], *, fixed_ids: bool) -> None:
    """The run's settings. With `fixed_ids`, every `{name}`, `{channel_id}`... names a
    seeded object; without (the stateful phase, which follows its own links from what it
    creates), only the subscription token and the long-poll wait are set."""
    parameters: dict[str, str] = {"query.wait": "0"}  # a long-poll holds a test case 30 s
    if fixed_ids:
        parameters |= {
            "path.name": NAME, "path.source": NAME, "path.channel_id": CHANNEL,
            "path.event_id": "1", "path.request_id": seeded["request_id"], "path.delivery_id": "1",
            "path.watch_id": seeded["watch_id"], "path.run_id": seeded["run_id"],
            "query.token": SOURCE_TOKEN,
        }  # fmt: skip
    # Unknown query parameters (and body fields, unless a model forbids them) are ignored,
    # as HTTP clients expect: they are not "invalid input" to be refused.
    lines = ["[generation]", "allow-extra-parameters = false", "", "[parameters]"]
    lines += [f"{json.dumps(key)} = {json.dumps(value)}" for key, value in parameters.items()]
    lines += [
        "",
        "[[operations]]",
        'include-path-regex = "^/v1/"',
        f'headers = {{ Authorization = "Bearer {seeded["subscription_token"]}" }}',
        "",
        # The operations that call Zoho answer 502 when Zoho refuses or cannot be reached
        # (here: nothing listens at the connection's URLs), as the document says.
        "[[operations]]",
        f"include-path-regex = {json.dumps(ZOHO_CALLS)}",
        'checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]',
    ]
    if fixed_ids:
        lines += [
            "",
            # Deleting the seeded objects would leave the operations after it nothing to
            # find: the deletions aim at objects that do not exist (404).
            "[[operations]]",
            'include-operation-id-regex = "^delete_admin_"',
            'parameters = { "path.name" = "st-none", "path.watch_id" = "999999" }',
        ]
    path.write_text("\n".join(lines) + "\n")


def _schemathesis(url: str, folder: Path, config: Path, phases: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
         "run", f"{url}/openapi.json", "--phases", phases,
         "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", "30", "--seed", "20261201", "--workers", "1",
         "--generation-database", "none", "--request-timeout", "10"],
        capture_output=True, text=True, timeout=600, cwd=folder,
    )  # fmt: skip
    report = done.stdout[-12000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "Selected: 53/53" in done.stdout, report
    return done.stdout


def test_the_whole_document_holds_against_the_server(served: str, tmp_path: Path) -> None:
    zoho = closed_port_socket()
    try:
        seeded = _seed(served, zoho.getsockname()[1])
        fixed, free = tmp_path / "fixed.toml", tmp_path / "free.toml"
        _config(fixed, seeded, fixed_ids=True)
        _config(free, seeded, fixed_ids=False)
        ran = _schemathesis(served, tmp_path, fixed, "examples,coverage,fuzzing")
        assert "Tested: 53" in ran, ran  # every operation, none skipped
        _schemathesis(served, tmp_path, free, "stateful")
    finally:
        zoho.close()
