"""Start-up and configuration errors are one line, name the environment variable and the
expected form, and exit 1: each bad configuration runs as a real process."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL
from tests.support import BRIDGE_CMD, ROOT, bridge_env, free_port

PG = make_url(POSTGRES_URL)
HOST = f"{PG.host or '127.0.0.1'}:{PG.port or 5432}"
PG_FORM = "postgresql+asyncpg://user:password@host:5432/database"
SQLITE_FORM = "sqlite+aiosqlite:///path/to/file.db"
COMMANDS = (["serve", "--port", "0"], ["db", "current"], ["status"], ["events", "list"])


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BRIDGE_CMD, *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    assert "listening" not in done.stderr + done.stdout
    return lines[0]


def _url(scheme: str, database: str = "test", user: str = "postgres", port: int = 0) -> str:
    return (f"{scheme}://{user}:s3cret-pass@{PG.host or '127.0.0.1'}:{port or PG.port or 5432}"
            f"/{database}")  # fmt: skip


BAD_DATABASES = {
    "postgres://": (_url("postgres"), [PG_FORM, "postgres:// is not a SQLAlchemy dialect"]),
    "postgresql:// (no async driver)": (
        _url("postgresql"),
        [PG_FORM, "postgresql:// without a driver picks a synchronous one"],
    ),
    "postgresql+psycopg2://": (
        _url("postgresql+psycopg2"),
        [PG_FORM, "psycopg2 is not the asyncio driver"],
    ),
    "sqlite:// (no async driver)": ("sqlite:///./x.db", [SQLITE_FORM, "without a driver"]),
    "mysql://": ("mysql+aiomysql://u@h/db", [PG_FORM, SQLITE_FORM, "not a database the bridge"]),
    "unknown database": (
        _url("postgresql+asyncpg", database="zb_no_such_database"),
        ["database 'zb_no_such_database' does not exist on", PG_FORM],
    ),
    "unknown role": (
        _url("postgresql+asyncpg", user="zb_no_such_role"),
        ["role 'zb_no_such_role' does not exist on", PG_FORM],
    ),
    "closed port": (
        _url("postgresql+asyncpg", port=free_port()),
        ["nothing answers on", "is PostgreSQL running there?", PG_FORM],
    ),
    "SQLite file in a missing directory": (
        "sqlite+aiosqlite:///{tmp}/missing/bridge.db",
        ["the directory", "missing does not exist (create it first)", SQLITE_FORM],
    ),
}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("case", BAD_DATABASES)
def test_a_database_url_that_cannot_work_is_one_line(
    case: str, command: list[str], tmp_path: Path
) -> None:
    url, expected = BAD_DATABASES[case]
    url = url.format(tmp=tmp_path)
    line = one_line_error(run(bridge_env(url), *command))
    assert "BRIDGE_DATABASE_URL" in line
    for part in expected:
        assert part in line, line
    assert "s3cret-pass" not in line


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BRIDGE_PORT", "99999", "BRIDGE_PORT: Input should be less than or equal to 65535"),
        ("BRIDGE_PUBLIC_URL", "hooks.example.com",
         "BRIDGE_PUBLIC_URL: must be an absolute http:// or https:// URL"),
        ("BRIDGE_PUBLIC_URL", "ftp://hooks.example.com",
         "BRIDGE_PUBLIC_URL: must be an absolute http:// or https:// URL"),
        ("BRIDGE_ADMIN_TOKEN", "short-token", "BRIDGE_ADMIN_TOKEN: must be at least 16 characters"),
        ("BRIDGE_MAX_BODY_BYTES", "lots", "BRIDGE_MAX_BODY_BYTES: Input should be a valid integer"),
        ("BRIDGE_SINKS", "pull,webhook", "BRIDGE_SINKS: the webhook sink needs BRIDGE_WEBHOOK_URL"),
        ("BRIDGE_REDIS_MAXLEN", "0", "BRIDGE_REDIS_MAXLEN: Input should be greater than"),
    ],
)  # fmt: skip
def test_a_bad_setting_names_its_variable(
    variable: str, value: str, expected: str, sqlite_template: Path
) -> None:
    env = bridge_env(f"sqlite+aiosqlite:///{sqlite_template}", **{variable: value})
    for command in (["serve", "--port", "0"], ["db", "current"]):
        line = one_line_error(run(env, *command))
        assert line == f"Error: invalid setting: {expected}" or line.startswith(
            f"Error: invalid setting: {expected}"
        ), line
        if variable == "BRIDGE_ADMIN_TOKEN":
            assert value not in line  # a secret is never echoed


def test_an_unknown_variable_is_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    env = bridge_env(f"sqlite+aiosqlite:///{tmp_path}/b.db", BRIDGE_PROT="9000",
                     BRIDGE_DATABASE_URI="x", BRIDGE_NOTHING_LIKE_IT="1")  # fmt: skip
    done = run(env, "keygen")
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "warning: BRIDGE_DATABASE_URI is not a zoho-bridge setting; "
        "did you mean BRIDGE_DATABASE_URL?",
        "warning: BRIDGE_NOTHING_LIKE_IT is not a zoho-bridge setting",
        "warning: BRIDGE_PROT is not a zoho-bridge setting; did you mean BRIDGE_PORT?",
    ]


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = bridge_env(f"sqlite+aiosqlite:///{tmp_path}/b.db")
        line = one_line_error(run(env, "serve", "--port", str(port)))
    assert line == (
        f"Error: cannot listen on 127.0.0.1:{port}: the port is in use "
        "(another zoho-bridge?); choose one with BRIDGE_PORT"
    )
    assert not (tmp_path / "b.db").exists()  # refused before anything else ran


def test_serve_binds_then_lists_what_it_runs(tmp_path: Path) -> None:
    port = free_port()
    env = bridge_env(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", BRIDGE_SINKS="pull,redis",
        BRIDGE_REDIS_URL="redis://:redis-secret@127.0.0.1:6379/0", BRIDGE_SCHEDULER="false",
    )  # fmt: skip
    proc = subprocess.Popen([*BRIDGE_CMD, "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first == f"zoho-bridge listening on http://127.0.0.1:{port}\n"
        # Said only once the port is ours: a connection is taken at once (and answered
        # once the app is up).
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        banner = [proc.stderr.readline().rstrip("\n") for _ in range(4)]
        assert banner == [
            f"  console:   http://127.0.0.1:{port}/admin/ui/",
            f"  database:  sqlite+aiosqlite:///{tmp_path}/b.db",
            "  sinks:     pull, redis (redis://127.0.0.1:6379/0)",
            "  jobs:      relay to redis (a child process); no channel renewal or reconciliation "
            "(BRIDGE_SCHEDULER=false); retention purge every 3600 s (30 days)",
        ]
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("serve did not answer")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_banner_hides_the_database_password() -> None:
    from bridge.cli.serve import banner
    from bridge.settings import Settings

    settings = Settings.from_environ({}, database_url=_url("postgresql+asyncpg"))
    lines = banner(settings, "127.0.0.1", 8000)
    assert lines[2] == f"  database:  postgresql+asyncpg://postgres:***@{HOST}/test"
    assert lines[1] == "  console:   off (set BRIDGE_ADMIN_TOKEN to enable the admin API)"
    assert all("s3cret-pass" not in line for line in lines)
