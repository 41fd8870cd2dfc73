"""Pages of envelopes built by the database: the pull API's read path.

Building one envelope in Python (a row object, a `StoredEvent`, a dict, `json.dumps` with
`data` decoded and encoded again) costs several times what fetching its row does, so a
page of a thousand events was served at a sixth of the rate the database reads it. Here
the database writes each envelope's JSON itself (SQLite `json_object`, PostgreSQL
`json_build_object`, both in key order) with `data` spliced in as stored, and Python only
joins the texts.

The JSON is the same document `build_envelope` gives (tests/test_read_paths.py compares
them on both databases), not always the same bytes: `data` keeps the database's spacing.
Rows the SQL does not cover exactly — reconciled events (their extension attributes),
module names beyond printable ASCII (Python's `lower()` is Unicode-aware), times not in
the stored layout — come back without text and are built by `build_envelope`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    not_,
    select,
    type_coerce,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.domain.envelope import SPECVERSION, build_envelope
from bridge.domain.events import EventFilter, Operation, Origin, Product
from bridge.store.database import connect
from bridge.store.event_queries import equal_clauses, stored_event
from bridge.store.events_envelope_text import envelope_text
from bridge.store.models import EventRow

_TEXT = String()


def _text(column: Any) -> ColumnElement[str]:
    return type_coerce(column, _TEXT)


def _constant(value: str) -> ColumnElement[str]:
    """A string constant written into the SQL (no bound parameter: PostgreSQL could not
    type one passed to its variadic JSON builder)."""
    assert "'" not in value
    return literal_column(f"'{value}'", _TEXT)


def _cut(text: ColumnElement[str], start: int, length: int) -> ColumnElement[str]:
    return func.substr(text, literal_column(str(start)), literal_column(str(length)), type_=_TEXT)


def _time(dialect: str) -> ColumnElement[str]:
    """`format_time(occurred_at)`: RFC 3339 UTC, milliseconds truncated, with a `Z`."""
    if dialect == "sqlite":
        # Stored as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC, no offset): cut, never round.
        stored = _text(EventRow.occurred_at)
        day, clock = _cut(stored, 1, 10), _cut(stored, 12, 12)
        return day + _constant("T") + clock + _constant("Z")
    utc = func.timezone(_constant("UTC"), EventRow.occurred_at)
    return func.to_char(utc, _constant('YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), type_=_TEXT)


def _type(dialect: str) -> ColumnElement[str]:
    crm = _constant("com.zoho.crm.record.") + EventRow.operation
    lower = func.lower(EventRow.module, type_=_TEXT)
    books = _constant("com.zoho.books.") + lower + _constant(".") + EventRow.operation
    return case((EventRow.product == _constant("crm"), crm), else_=books)


def _one_of(column: Any, values: Iterable[str]) -> ColumnElement[bool]:
    return column.in_([_constant(v) for v in values])  # type: ignore[no-any-return]


def _covered(dialect: str) -> ColumnElement[bool]:
    """Rows whose envelope the SQL writes exactly (the others are built in Python, which
    also refuses a stored value the domain does not know, as every other read does)."""
    known = and_(
        _one_of(EventRow.product, Product),
        _one_of(EventRow.operation, Operation),
        # Reconciled events carry extension attributes: built in Python.
        _one_of(EventRow.origin, (Origin.WEBHOOK, Origin.REPLAY)),
    )
    if dialect == "sqlite":
        unusual = EventRow.module.op("GLOB", is_comparison=True)(_constant("*[^ -~]*"))
        layout = func.length(_text(EventRow.occurred_at)) == literal_column("26")
        return and_(known, not_(unusual), layout)
    ascii_module = EventRow.module.op("~", is_comparison=True)(_constant("^[ -~]*$"))
    return and_(known, ascii_module)


def envelope_sql(dialect: str) -> ColumnElement[str | None]:
    """The envelope JSON of a covered row without its `data` (NULL for the others), keys
    in `build_envelope`'s order: `data`, the last key, is spliced in by `_with_data`."""
    pairs: list[tuple[str, Any]] = [
        ("specversion", _constant(SPECVERSION)),
        ("id", EventRow.id),
        ("source", _constant("zoho-bridge/") + EventRow.product + _constant("/") + EventRow.source),
        ("type", _type(dialect)),
        ("subject", EventRow.module + _constant("/") + EventRow.record_id),
        ("time", _time(dialect)),
        ("datacontenttype", _constant("application/json")),
        ("zohomodule", EventRow.module),
        ("zohooperation", EventRow.operation),
        ("zohorecordid", EventRow.record_id),
        ("zohoorigin", EventRow.origin),
        ("bridgeseq", EventRow.seq),
    ]
    build = func.json_object if dialect == "sqlite" else func.json_build_object
    arguments = [part for key, value in pairs for part in (_constant(key), value)]
    document: ColumnElement[str] = build(*arguments, type_=_TEXT)
    if dialect != "sqlite":
        document = cast(document, Text)
    return case((_covered(dialect), document), else_=None)


def _data_text(dialect: str) -> ColumnElement[str]:
    """`data` as the JSON text stored (PostgreSQL's driver would decode a jsonb value)."""
    return _text(EventRow.data) if dialect == "sqlite" else cast(EventRow.data, Text)


def _with_data(envelope: str, data: str | None) -> str:
    """`data` as stored (JSON text, never decoded here) as the envelope's last key."""
    return f'{envelope[:-1]},"data":{data or "null"}}}'


# SQLite: the stored values, placed into the envelope by `envelope_text` (SQLite's own
# `json_object` measured slower than that); PostgreSQL: `envelope_sql`, run by the server.
_SQLITE_COLUMNS = (
    EventRow.seq, EventRow.id, EventRow.product, EventRow.source, EventRow.module,
    EventRow.operation, EventRow.record_id, _text(EventRow.occurred_at), EventRow.origin,
    _text(EventRow.data), EventRow.miss_cause, EventRow.collapsed,
)  # fmt: skip


@cache
def _page_query(dialect: str, source: bool, module: bool, operation: bool) -> Select[Any]:
    """The page query of a subscription's filter shape, built once: building and keying a
    statement this size costs more than running it on a small page."""
    shape = {"source": source, "module": module, "operation": operation}
    values: dict[str, Any] = {name: bindparam(name) for name, given in shape.items() if given}
    columns = (
        _SQLITE_COLUMNS
        if dialect == "sqlite"
        else (EventRow.seq, envelope_sql(dialect), _data_text(dialect))
    )
    query: Select[Any] = (
        select(*columns)
        .where(*equal_clauses(values, dialect), EventRow.seq > bindparam("after"))
        .order_by(EventRow.seq.asc())
        .limit(bindparam("limit"))
    )
    return query


@cache
def _sqlite_statement(query: Select[Any]) -> tuple[str, tuple[str, ...], Any]:
    compiled = query.compile(dialect=sqlite_dialect.dialect())
    return compiled.string, tuple(compiled.positiontup or ()), compiled.params


async def _sqlite_texts(
    conn: AsyncConnection, query: Select[Any], values: dict[str, Any]
) -> list[tuple[int, str | None]]:
    """(seq, envelope) of the page's rows, read in one hop to aiosqlite's thread
    (SQLAlchemy's cursor takes several: on two busy cores each costs a scheduling delay,
    more than the query itself)."""
    sql, order, defaults = _sqlite_statement(query)
    every = {**defaults, **values}
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    rows = await driver.execute_fetchall(sql, [every[name] for name in order])
    return [(row[0], envelope_text(row)) for row in rows]


async def envelope_page(
    engine: AsyncEngine, where: EventFilter, *, after_seq: int, limit: int
) -> tuple[list[str], int | None]:
    """The envelopes (JSON texts) of up to `limit` events matching `where` (a pull
    subscription's filter: source, module, operation) after `after_seq`, oldest first,
    and the last one's seq (None when there are none)."""
    given = {"source": where.source, "module": where.module, "operation": where.operation}
    query = _page_query(engine.dialect.name, *(v is not None for v in given.values()))
    values = {**{k: v for k, v in given.items() if v is not None}, "after": after_seq,
              "limit": limit}  # fmt: skip
    async with connect(engine) as conn:
        if engine.dialect.name == "sqlite":
            texts = await _sqlite_texts(conn, query, values)
        else:
            rows = (await conn.execute(query, values)).all()
            texts = [(seq, None if t is None else _with_data(t, d)) for seq, t, d in rows]
        missing = [seq for seq, text in texts if text is None]
        built: dict[int, str] = {}
        if missing:
            found = await conn.execute(select(EventRow).where(EventRow.seq.in_(missing)))
            for row in found:
                envelope = build_envelope(stored_event(row))
                built[row.seq] = json.dumps(
                    envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False
                )
    page = [text if text is not None else built[seq] for seq, text in texts]
    return page, (texts[-1][0] if texts else None)
