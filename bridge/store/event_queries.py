"""Reading events and inbound requests back: filters and cursor pagination."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.events import EventFilter, Operation, Origin, Product, StoredEvent
from bridge.domain.requests import InboundRequest, RequestStatus
from bridge.store.batch import REQUEST_COLUMNS
from bridge.store.database import connect
from bridge.store.models import EventRow, RequestRow

# The filters, most selective first as a rule of thumb: on SQLite, which keeps no
# statistics here, only the first one given may drive the query through its index (the
# others are written so no index matches them), so a rare value is never looked up through
# a common one's index. PostgreSQL's planner chooses by its statistics.
DRIVING_ORDER = ("record_id", "request_id", "module", "source", "origin", "operation", "product")
# The condition of the origin index (models.NOT_WEBHOOK), added to a query on another
# origin: SQLite uses a partial index only when the query states its condition.
_NOT_WEBHOOK = EventRow.origin != literal_column(f"'{Origin.WEBHOOK.value}'")


def filter_clauses(where: EventFilter, dialect: str) -> list[ColumnElement[bool]]:
    """`clauses(where)` for a query ordered by seq, steering SQLite to one index."""
    found = equal_clauses({n: getattr(where, n) for n in DRIVING_ORDER}, dialect)
    if where.since is not None:
        found.append(EventRow.received_at >= where.since)
    if where.until is not None:
        found.append(EventRow.received_at < where.until)
    return found


def equal_clauses(values: dict[str, Any], dialect: str) -> list[ColumnElement[bool]]:
    """`column = value` for each value given (None: any), in `DRIVING_ORDER`; on SQLite
    only the first can use an index (the origin index's condition is added for any
    origin but `webhook`, which that index does not hold)."""
    given = [n for n in DRIVING_ORDER if values.get(n) is not None]
    found: list[ColumnElement[bool]] = []
    for name in given:
        column = getattr(EventRow, name)
        # `column || ''` equals the value exactly when the column does, NULL included.
        steered = dialect == "sqlite" and name != given[0]
        found.append((column + "" if steered else column) == values[name])
        value = values[name]
        if name == "origin" and isinstance(value, str) and value != Origin.WEBHOOK.value:
            found.append(_NOT_WEBHOOK)
    return found


def clauses(where: EventFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of an event filter."""
    found: list[ColumnElement[bool]] = []
    for name in (
        "source", "module", "record_id", "operation", "origin", "product", "request_id"
    ):  # fmt: skip
        value = getattr(where, name)
        if value is not None:
            found.append(getattr(EventRow, name) == value)
    if where.since is not None:
        found.append(EventRow.received_at >= where.since)
    if where.until is not None:
        found.append(EventRow.received_at < where.until)
    return found


def stored_event(row: Any) -> StoredEvent:
    """The event held by any row with the events columns (a query, a join, or a
    `StoredEvent` itself). The same stored row always gives the same envelope."""
    return StoredEvent(
        id=row.id,
        seq=row.seq,
        product=Product(row.product),
        source=row.source,
        module=row.module,
        operation=Operation(row.operation),
        record_id=row.record_id,
        occurred_at=row.occurred_at,
        origin=Origin(row.origin),
        data=row.data,
        received_at=row.received_at,
        dedup_key=row.dedup_key,
        request_id=row.request_id,
        miss_cause=row.miss_cause,
        collapsed=row.collapsed,
    )


async def list_events(
    engine: AsyncEngine,
    where: EventFilter,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 100,
) -> list[StoredEvent]:
    """Newest first, or oldest first when `after_seq` is given (a consumer's cursor)."""
    query = events_query(
        where, engine.dialect.name, before_seq=before_seq, after_seq=after_seq, limit=limit
    )
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [stored_event(row) for row in rows]


def events_query(
    where: EventFilter,
    dialect: str,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 100,
) -> Select[EventRow]:
    """The statement `list_events` runs (its plan is checked in tests/test_read_paths.py)."""
    query = select(EventRow).where(*filter_clauses(where, dialect))
    if after_seq is not None:
        query = query.where(EventRow.seq > after_seq).order_by(EventRow.seq.asc())
    else:
        if before_seq is not None:
            query = query.where(EventRow.seq < before_seq)
        query = query.order_by(EventRow.seq.desc())
    return query.limit(limit)


async def get_event(engine: AsyncEngine, event_id: str) -> StoredEvent | None:
    query = select(EventRow)
    query = (
        query.where(EventRow.seq == int(event_id))
        if event_id.isdigit()
        else query.where(EventRow.id == event_id)
    )
    async with connect(engine) as conn:
        row = (await conn.execute(query)).first()
    return stored_event(row) if row is not None else None


def _request(row: Any) -> InboundRequest:
    return InboundRequest(
        **{name: getattr(row, name) for name in REQUEST_COLUMNS},
        rejected=row.status == RequestStatus.REJECTED,
    )


async def list_requests(
    engine: AsyncEngine,
    *,
    status: str | None = None,
    kind: str | None = None,
    source: str | None = None,
    before_id: str | None = None,
    limit: int = 100,
) -> list[InboundRequest]:
    query = select(RequestRow)
    for column, value in (
        (RequestRow.status, status),
        (RequestRow.kind, kind),
        (RequestRow.source, source),
    ):
        if value is not None:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(RequestRow.id < before_id)
    query = query.order_by(RequestRow.id.desc()).limit(limit)
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [_request(r) for r in rows]


async def get_request(engine: AsyncEngine, request_id: str) -> InboundRequest | None:
    async with connect(engine) as conn:
        row = (await conn.execute(select(RequestRow).where(RequestRow.id == request_id))).first()
    if row is None:
        return None
    return _request(row)
