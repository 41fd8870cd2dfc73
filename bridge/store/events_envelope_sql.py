"""An event's envelope written by the database, from the row's stored values, in the query.

Built in Python (`StoredEvent`, `build_envelope`, `json.dumps` with `data` decoded and
encoded again) an envelope cost several times what reading its row does; even placed into
a template in Python, per row string work kept the pull API under half a raw read of the
same pages. Here the page query returns each envelope as one text, concatenated in C by
SQLite or by the PostgreSQL server: strings are quoted by the database's own JSON quoting
(`json_quote`, `to_json`), the time is cut from the stored text, and `data` is placed as
it is stored (PostgreSQL prints `jsonb` with a space after `:` and `,`).

Events stored since migration 0011 carry their envelope's text up to the seq
(`envelope_head`, written by `domain.envelope.envelope_head` when the event is stored):
their envelope is that head, the seq and `data`, one `printf` / `format` of four values.
Older rows and reconciled events (whose extra attributes follow the seq) are written
field by field as below.

The document is the one `build_envelope` gives, keys in the same order
(tests/test_read_paths.py compares them on both databases). A row with a value the domain
does not know, a time in another layout, or a Books entity whose lower case the database
might fold differently from Python (non-ASCII) gets NULL: its caller builds that one with
`build_envelope`, which refuses what it cannot read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
)

from bridge.domain.envelope import SPECVERSION
from bridge.domain.events import Operation, Origin, Product
from bridge.store.models import EventRow

_STORED_TIME = len("2024-06-11 14:25:53.625000")  # SQLite's text of a UTC time


def _text(value: str) -> ColumnElement[str]:
    """A SQL string literal (not a parameter: the statement stays the same every time)."""
    return literal_column("'" + value.replace("'", "''") + "'", Text)


def _concat(*parts: Any) -> ColumnElement[str]:
    joined: ColumnElement[str] = parts[0]
    for part in parts[1:]:
        joined = joined.op("||")(part)
    return joined


def _formatted(dialect: str, *parts: Any) -> ColumnElement[str]:
    """Literal texts (`str`) and SQL values, in order, joined by one `printf` (SQLite)
    or `format` (PostgreSQL) call: a fifth faster on SQLite than a chain of `||`, which
    makes a new string at each step."""
    template = "".join(p.replace("%", "%%") if isinstance(p, str) else "%s" for p in parts)
    values = [p for p in parts if not isinstance(p, str)]
    name = "printf" if dialect == "sqlite" else "format"
    joined: ColumnElement[str] = getattr(func, name)(_text(template), *values, type_=Text)
    return joined


def _quoted(dialect: str, value: Any) -> ColumnElement[str]:
    """`value` as a JSON string, quoted by the database."""
    if dialect == "sqlite":
        return func.json_quote(value, type_=Text)
    return cast(func.to_json(cast(value, Text)), Text)


def _time(dialect: str) -> tuple[Any, ...]:
    """`occurred_at` as `2024-06-11T14:25:53.625Z` (milliseconds cut, not rounded), as
    parts of `_formatted`."""
    if dialect == "sqlite":
        stored = cast(EventRow.occurred_at, String)
        return func.substr(stored, 1, 10), "T", func.substr(stored, 12, 12), "Z"
    utc = func.timezone("UTC", EventRow.occurred_at)
    return (func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"', type_=Text),)


def _known(dialect: str) -> ColumnElement[bool]:
    """Rows the database writes the envelope of (the others are built in Python)."""
    ascii_module = (
        ~EventRow.module.op("GLOB", is_comparison=True)(_text("*[^ -~]*"))
        if dialect == "sqlite"
        else EventRow.module.op("~", is_comparison=True)(_text("^[ -~]*$"))
    )
    checks = [
        EventRow.product.in_([_text(p.value) for p in Product]),
        EventRow.operation.in_([_text(o.value) for o in Operation]),
        EventRow.origin.in_([_text(o.value) for o in Origin]),
        or_(EventRow.product == _text(Product.CRM.value), ascii_module),
    ]
    if dialect == "sqlite":
        checks.append(func.length(cast(EventRow.occurred_at, String)) == _STORED_TIME)
    return and_(*checks)


def _reconciled(dialect: str) -> ColumnElement[str]:
    """`,"zohomisscause":…,"zohocollapsed":…` for a reconciled event, else ''."""
    # A CASE, not coalesce: SQLite's json_quote(NULL) is the text 'null'.
    cause = case(
        (EventRow.miss_cause.is_(None), _text("")),
        else_=_concat(_text(',"zohomisscause":'), _quoted(dialect, EventRow.miss_cause)),
    )
    collapsed = case(
        (EventRow.collapsed.is_(None), _text("")),
        (EventRow.collapsed.is_(True), _text(',"zohocollapsed":true')),
        else_=_text(',"zohocollapsed":false'),
    )
    return case(
        (EventRow.origin == _text(Origin.RECONCILIATION.value), _concat(cause, collapsed)),
        else_=_text(""),
    )


def envelope_column(dialect: str) -> ColumnElement[bytes | None]:
    """The envelope of each selected events row as UTF-8 JSON bytes, or NULL (see above).

    Bytes, not text: the driver then hands them over as they are (no decoding of each
    envelope into a `str`), and the pull API and the sinks send them as they are (no
    encoding back)."""
    q = _quoted
    crm_type = _concat(_text("com.zoho.crm.record."), EventRow.operation)
    books_type = _concat(_text("com.zoho.books."), func.lower(EventRow.module), _text("."),
                         EventRow.operation)  # fmt: skip
    kind = case((EventRow.product == _text(Product.CRM.value), crm_type), else_=books_type)
    source = _concat(_text("zoho-bridge/"), EventRow.product, _text("/"), EventRow.source)
    subject = _concat(EventRow.module, _text("/"), EventRow.record_id)
    data = func.coalesce(cast(EventRow.data, Text), _text("null"))
    document = _formatted(
        dialect,
        f'{{"specversion":"{SPECVERSION}","id":', q(dialect, EventRow.id),
        ',"source":', q(dialect, source),
        ',"type":', q(dialect, kind),
        ',"subject":', q(dialect, subject),
        ',"time":"', *_time(dialect),
        '","datacontenttype":"application/json","zohomodule":', q(dialect, EventRow.module),
        ',"zohooperation":"', EventRow.operation,
        '","zohorecordid":', q(dialect, EventRow.record_id),
        ',"zohoorigin":"', EventRow.origin,
        '","bridgeseq":', cast(EventRow.seq, Text), _reconciled(dialect),
        ',"data":', data,
        "}",
    )  # fmt: skip
    # Rows stored with their envelope's head (migration 0011): four values, no quoting.
    stored = _formatted(
        dialect, EventRow.envelope_head, cast(EventRow.seq, Text), ',"data":', data, "}"
    )
    return case(
        (EventRow.envelope_head.is_not(None), _encoded(dialect, stored)),
        (_known(dialect), _encoded(dialect, document)),
        else_=None,
    )


def _encoded(dialect: str, document: ColumnElement[str]) -> ColumnElement[bytes]:
    """`document` as UTF-8 bytes."""
    if dialect == "sqlite":
        return cast(document, LargeBinary)
    encoded: ColumnElement[bytes] = func.convert_to(document, _text("UTF8"), type_=LargeBinary)
    return encoded
