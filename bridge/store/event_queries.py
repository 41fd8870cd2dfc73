"""Reading events and inbound requests back: filters and cursor pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.envelope import StoredEvent
from bridge.domain.events import Operation, Origin, Product
from bridge.store.database import connect
from bridge.store.models import Event, InboundRequest


@dataclass(frozen=True, slots=True)
class EventFilter:
    source: str | None = None
    module: str | None = None
    record_id: str | None = None
    operation: str | None = None
    origin: str | None = None
    product: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None  # the events one delivery produced

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        for name in (
            "source", "module", "record_id", "operation", "origin", "product", "request_id"
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                clauses.append(getattr(Event, name) == value)
        if self.since is not None:
            clauses.append(Event.received_at >= self.since)
        if self.until is not None:
            clauses.append(Event.received_at < self.until)
        return clauses


@dataclass(frozen=True, slots=True)
class EventRecord:
    seq: int
    id: str
    product: str
    source: str
    module: str
    operation: str
    record_id: str
    occurred_at: datetime
    received_at: datetime
    origin: str
    dedup_key: str
    data: dict[str, Any]
    request_id: str | None


def _event(row: Any) -> EventRecord:
    return EventRecord(**{name: getattr(row, name) for name in EventRecord.__slots__})


def event_record(row: Any) -> EventRecord:
    """An EventRecord from any row holding the events columns (e.g. a join)."""
    return _event(row)


def stored_event(event: EventRecord) -> StoredEvent:
    """What the envelope is built from: the same stored row always gives the same envelope."""
    return StoredEvent(
        id=event.id,
        seq=event.seq,
        product=Product(event.product),
        source=event.source,
        module=event.module,
        operation=Operation(event.operation),
        record_id=event.record_id,
        occurred_at=event.occurred_at,
        origin=Origin(event.origin),
        data=event.data,
    )


async def list_events(
    engine: AsyncEngine,
    where: EventFilter,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 100,
) -> list[EventRecord]:
    """Newest first, or oldest first when `after_seq` is given (a consumer's cursor)."""
    query = select(Event).where(*where.clauses())
    if after_seq is not None:
        query = query.where(Event.seq > after_seq).order_by(Event.seq.asc())
    else:
        if before_seq is not None:
            query = query.where(Event.seq < before_seq)
        query = query.order_by(Event.seq.desc())
    async with connect(engine) as conn:
        rows = (await conn.execute(query.limit(limit))).all()
    return [_event(row) for row in rows]


async def get_event(engine: AsyncEngine, event_id: str) -> EventRecord | None:
    query = select(Event)
    query = (
        query.where(Event.seq == int(event_id))
        if event_id.isdigit()
        else query.where(Event.id == event_id)
    )
    async with connect(engine) as conn:
        row = (await conn.execute(query)).first()
    return _event(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class RequestSummary:
    id: str
    received_at: datetime
    kind: str
    source: str | None
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    body_size: int
    body_truncated: bool
    remote_addr: str | None
    status: str
    http_status: int
    reason: str | None
    verification: str | None
    event_count: int


async def list_requests(
    engine: AsyncEngine,
    *,
    status: str | None = None,
    kind: str | None = None,
    source: str | None = None,
    before_id: str | None = None,
    limit: int = 100,
) -> list[RequestSummary]:
    query = select(InboundRequest)
    for column, value in (
        (InboundRequest.status, status),
        (InboundRequest.kind, kind),
        (InboundRequest.source, source),
    ):
        if value is not None:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(InboundRequest.id < before_id)
    query = query.order_by(InboundRequest.id.desc()).limit(limit)
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [RequestSummary(**{n: getattr(r, n) for n in RequestSummary.__slots__}) for r in rows]


async def get_request(engine: AsyncEngine, request_id: str) -> RequestSummary | None:
    async with connect(engine) as conn:
        row = (
            await conn.execute(select(InboundRequest).where(InboundRequest.id == request_id))
        ).first()
    if row is None:
        return None
    return RequestSummary(**{n: getattr(row, n) for n in RequestSummary.__slots__})
