"""One line on why the configured database cannot be used, for every command."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bridge.settings import database_url_problem

POSTGRES_FORM = "postgresql+asyncpg://user:password@host:5432/database"
SQLITE_FORM = "sqlite+aiosqlite:///path/to/file.db"
_QUOTED = re.compile(r'"([^"]+)"')


def shown(url: str) -> str:
    """The URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def strip_secrets(url: str) -> str:
    """Any URL without its user information (a password, a token)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path.partition('?')[0]}"


def missing_directory(url: str) -> str | None:
    """For a SQLite file whose directory does not exist, the one line to say; checked
    before connecting (the driver's own failure comes from a thread, as a traceback)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or Path(parsed.database).parent.exists():
        return None
    where = f"BRIDGE_DATABASE_URL={shown(url)}"
    return f"{where}: {_sqlite_cause(parsed.database, '')} (expected {SQLITE_FORM})"


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` comes from opening or using the database (not from the bridge)."""
    if isinstance(exc, SQLAlchemyError | OSError | ImportError):
        return True
    return type(exc).__module__.split(".")[0] in ("asyncpg", "sqlite3", "aiosqlite")


def describe(url: str, exc: BaseException) -> str:
    """`BRIDGE_DATABASE_URL ...: <cause>` in one line, naming the form it should have."""
    where = f"BRIDGE_DATABASE_URL={shown(url)}"
    form = database_url_problem(url)
    if form is not None:
        return f"{where} {form}"
    text = " ".join(_messages(exc))
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"{where}: {_sqlite_cause(parsed.database, text)} (expected {SQLITE_FORM})"
    return f"{where}: {_postgres_cause(parsed, exc, text)} (expected {POSTGRES_FORM})"


def _sqlite_cause(database: str | None, text: str) -> str:
    path = Path(database or "")
    if database and not path.parent.exists():
        return f"the directory {path.parent} does not exist (create it first)"
    return f"cannot open the SQLite file {path}: {_first_line(text)}"


def _postgres_cause(parsed: URL, exc: BaseException, text: str) -> str:
    host = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if "does not exist" in text and "database" in text:
        return f"database {_quoted(text) or parsed.database!r} does not exist on {host}"
    if "role" in text and "does not exist" in text:
        return f"role {_quoted(text) or parsed.username!r} does not exist on {host}"
    if "password authentication failed" in text:
        return f"PostgreSQL on {host} refused the password for {parsed.username!r}"
    if _refused(exc) or "Connect call failed" in text or "Connection refused" in text:
        return f"nothing answers on {host} (is PostgreSQL running there?)"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return f"the host {parsed.host!r} is unknown"
    return f"cannot use the database: {_first_line(text) or type(exc).__name__}"


def _messages(exc: BaseException) -> list[str]:
    found: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found.append(f"{type(current).__name__}: {current}")
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (
            current.__cause__ or current.__context__
        )  # fmt: skip
    return found


def _refused(exc: BaseException) -> bool:
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, ConnectionRefusedError):
            return True
        current = current.__cause__ or current.__context__
    return False


def _quoted(text: str) -> str | None:
    match = _QUOTED.search(text)
    return match.group(1) if match else None


def _first_line(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line[:200]
