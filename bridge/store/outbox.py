"""The transactional outbox: queueing rows with the event, claiming them, settling them.

Rows are written by `OutboxHook` inside the transaction that inserts the events, so an
event is stored if and only if its deliveries are queued. Relays claim rows with a lease;
on PostgreSQL `FOR UPDATE SKIP LOCKED` lets several replicas claim side by side without
ever taking the same row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    Update,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from bridge.domain.attempts import Attempt
from bridge.domain.delivery import DeadLetter, DeliveryStatus, Retry, record_key
from bridge.domain.envelope import Message
from bridge.domain.events import Event
from bridge.store.attempts import record_attempts
from bridge.store.batch import TableRows
from bridge.store.database import alone, begin, connect
from bridge.store.events_envelopes import message_columns, messages
from bridge.store.models import DeliveryRow, EventRow

PENDING = DeliveryStatus.PENDING.value
MAX_ERROR = 1000  # characters of an error message kept on the row


@dataclass(frozen=True)
class OutboxHook:
    """The writer's in-transaction hook: one pending row per new event per push sink."""

    sinks: tuple[str, ...]

    def __call__(self, inserted: Sequence[Event]) -> list[TableRows]:
        if not self.sinks or not inserted:
            return []
        rows = [
            delivery_row(e.seq, record_key(e.source, e.module, e.record_id), sink, _when(e))
            for e in inserted  # sorted by seq: row ids follow seq, which ordering relies on
            for sink in self.sinks
        ]  # fmt: skip
        columns = tuple(rows[0])
        return [TableRows("deliveries", columns, [tuple(r[c] for c in columns) for r in rows])]


def _when(event: Event) -> datetime:
    assert event.received_at is not None  # set when the event was queued
    return event.received_at


def delivery_row(
    seq: int, key: str, sink: str, now: datetime, *, replay: bool = False
) -> dict[str, Any]:
    return {
        "event_seq": seq,
        "sink": sink,
        "record_key": key,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "replay": replay,
    }


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this relay holds the lease on, with its event's message to publish."""

    delivery_id: int
    attempts: int
    message: Message


def lane(row: Any) -> ColumnElement[str]:
    """A row's lane (`sink record_key`), written as the lane index holds it (`models.LANE`):
    literals, not parameters, so SQLite matches the index's expression and its partial
    predicate too."""
    space: ColumnElement[str] = literal_column("' '")
    found: ColumnElement[str] = row.sink.op("||")(space).op("||")(row.record_key)
    return found


def pending_in_lane_index(row: Any) -> ColumnElement[bool]:
    """`status = 'pending'` as the lane index's predicate writes it (`models.PENDING_ONLY`),
    so the probe can use that index and no other (migration 0010)."""
    found: ColumnElement[bool] = row.status.op("||")(literal_column("''")) == literal_column(
        f"'{PENDING}'"
    )
    return found


def claim_statement(
    sink: str, owner: str, *, now: datetime, lease: timedelta, limit: int
) -> Update:
    """The UPDATE that leases a claim's rows (see `claim`), returning id, attempts, seq."""
    return _lease_statement(sink, owner, now, now + lease, limit)


def _claim_values(
    sink: str, owner: str, *, now: datetime, lease: timedelta, limit: int
) -> dict[str, Any]:
    return {"claim_sink": sink, "claim_owner": owner, "claim_now": now,
            "claim_until": now + lease, "claim_limit": limit}  # fmt: skip


@cache
def lease_rows() -> Update:
    """`claim_statement` with its values as parameters, built once: building (and keying)
    the statement cost about a tenth of the relay's own CPU per batch."""
    sink, owner, now, until = (
        _parameter(name) for name in ("claim_sink", "claim_owner", "claim_now", "claim_until")
    )
    return _lease_statement(sink, owner, now, until, bindparam("claim_limit", type_=Integer))


def _parameter(name: str) -> BindParameter[Any]:
    """A parameter typed by the column it meets."""
    return bindparam(name)


def _lease_statement(sink: Any, owner: Any, now: Any, until: Any, limit: Any) -> Update:
    """The lease UPDATE for these values (or parameters)."""
    other = aliased(DeliveryRow)
    head = (
        select(func.min(other.id))
        .where(lane(other) == lane(DeliveryRow), pending_in_lane_index(other))
        .scalar_subquery()
    )
    due = (
        select(DeliveryRow.id)
        .where(
            DeliveryRow.sink == sink,
            DeliveryRow.status == PENDING,
            DeliveryRow.next_attempt_at <= now,
            or_(DeliveryRow.lease_until.is_(None), DeliveryRow.lease_until <= now),
            DeliveryRow.id == head,
        )
        .order_by(DeliveryRow.next_attempt_at)
        .limit(limit)
        # PostgreSQL: rows another relay is leasing this instant are passed over, and a row
        # whose lease was committed meanwhile is checked again and left out. SQLite ignores
        # it: the UPDATE holds the single write lock from its first read.
        .with_for_update(skip_locked=True)
    )
    return (
        update(DeliveryRow)
        .where(DeliveryRow.id.in_(due))
        .values(lease_owner=owner, lease_until=until)
        .returning(DeliveryRow.id, DeliveryRow.attempts, DeliveryRow.event_seq)
    )


@cache
def _pg_claim() -> Select[Any]:
    """On PostgreSQL the lease and the events in one statement (built once)."""
    leased = lease_rows().cte("leased")
    return (
        select(
            *message_columns("postgresql"),
            leased.c.id.label("delivery_id"),
            leased.c.attempts.label("attempts"),
        )
        .join(EventRow, EventRow.seq == leased.c.event_seq)
        .order_by(leased.c.id)
    )


async def claim(
    engine: AsyncEngine,
    sink: str,
    owner: str,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    writes: RelayWrites | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due rows of `sink`, oldest due first, at most one per record.

    A row is skipped while an earlier row of its lane (same record, same sink) is still pending
    (waiting to retry, or leased by any relay, this one included): that keeps each record's
    events in order even while earlier batches are still being published, and a failing
    record holds back only its own later events.

    One statement: the due rows are read in `next_attempt_at` order from the
    (sink, status, next_attempt_at) index and each is kept only if it is its lane's head,
    found by a one-row probe of the lane index (pending rows by `sink record_key`, id). The
    probe names the lane by an expression only that index holds, so no statistics, stale or
    missing, can send it through another index (migration 0009). The work is
    the rows read until `limit` heads are found (rows in flight or blocked behind them),
    not the backlog: the same at 1k and at 1M pending rows. A scalar subquery is run per
    candidate whatever the statistics say, so the plan does not turn into a scan of the
    whole backlog (as a window function or a planner-chosen anti-join may).

    `writes` (SQLite): runs the lease's transaction whole on a thread of its own
    (`store.relay_sqlite`) instead of through `engine`.
    """
    values = _claim_values(sink, owner, now=now, lease=lease, limit=limit)
    if engine.dialect.name == "postgresql":
        # One round trip: the lease and the events come back from the same statement.
        # The planner's cost for this LIMIT query is high (it cannot know how soon `limit`
        # heads turn up), high enough for JIT compilation, which took 25-30 ms of a 5 ms
        # claim: the relay's engine turns JIT off (`database.RELAY_PG_SETTINGS`).
        # The statement commits on its own (no BEGIN and COMMIT round trips). Should the
        # rare second read of `messages` fail, the rows stay leased until the lease ends.
        async with alone(engine) as conn:
            rows = (await conn.execute(_pg_claim(), values)).all()
            found = await messages(conn, rows)
        return [Claimed(r.delivery_id, r.attempts, m) for r, m in zip(rows, found, strict=True)]
    # SQLite cannot join in RETURNING: the write transaction is the UPDATE alone (the
    # ingest writer waits on its lock for no more than that), the events are read after it.
    if writes is not None:
        leased_rows: Sequence[tuple[int, int, int]] = await writes.lease(values)
    else:
        async with begin(engine) as conn:
            leased_rows = [tuple(r) for r in await conn.execute(lease_rows(), values)]
    if not leased_rows:
        return []
    leases = {seq: (delivery_id, attempts) for delivery_id, attempts, seq in leased_rows}
    async with connect(engine) as conn:
        query = select(*message_columns("sqlite")).where(EventRow.seq.in_(list(leases)))
        found = await messages(conn, (await conn.execute(query)).all())
    return sorted(
        (Claimed(*leases[m.seq], m) for m in found),
        key=lambda c: c.delivery_id,
    )


async def ensure_statistics(engine: AsyncEngine) -> None:
    """On PostgreSQL, ANALYZE the outbox if it never was (a new database, before
    autovacuum's first pass). The relay's own statements no longer need it (the lane
    probe has an index no other can stand in for, settlements go by primary key, plans
    are made per execution: see `database.RELAY_PG_SETTINGS`); it is kept for the
    operators' queries of the outbox (status counts, listings), which were planned as if
    every index were equally good until the first statistics."""
    if engine.dialect.name != "postgresql":
        return
    async with connect(engine) as conn:
        never = await conn.scalar(
            text(
                "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL"
                " FROM pg_stat_user_tables WHERE relid = 'deliveries'::regclass"
            )
        )
    if never:
        async with begin(engine) as conn:
            await conn.execute(text("ANALYZE deliveries"))


def _still_pending() -> ColumnElement[bool]:
    """`status = 'pending'` for statements that name their rows by primary key, written so
    that no index can serve it: the planner then has only the primary key to use. Written
    plainly, PostgreSQL with statistics taken while the outbox was small (as at a relay's
    first start) scanned every pending row of an index led by `status` to mark 100 (5 ms
    at 45k pending, growing with the backlog)."""
    return func.coalesce(DeliveryRow.status, "") == PENDING


async def settle(
    engine: AsyncEngine,
    delivered: Sequence[int],
    failures: Sequence[Failure],
    attempts: Sequence[Attempt],
    now: datetime,
    writes: RelayWrites | None = None,
    *,
    publish_ms: float | None = None,
) -> None:
    """Settle a published batch in one transaction: the rows the sink confirmed marked
    delivered (one statement; `publish_ms` set on them when their delivering try is not
    among `attempts`), the failed ones set to retry or dead, and the attempts recorded.
    One commit per batch: on SQLite one turn of the write lock, not three.
    `writes` (SQLite): the transaction runs whole on a thread of its own."""
    if not (delivered or failures or attempts):
        return
    if writes is not None:
        await writes.settle(delivered, failures, attempts, now, publish_ms)
        return
    # A batch the sink took whole, the usual case, is one statement that commits on its own.
    async with alone(engine) if not (failures or attempts) else begin(engine) as conn:
        await _mark_delivered(conn, delivered, now, publish_ms)
        await _mark_failed(conn, failures)
        await record_attempts(conn, attempts)


async def mark_delivered(
    engine: AsyncEngine, ids: Sequence[int], now: datetime, publish_ms: float | None = None
) -> None:
    """One statement for the batch, each row found by its primary key."""
    if not ids:
        return
    async with alone(engine) as conn:
        await _mark_delivered(conn, ids, now, publish_ms)


def delivered_update(
    ids: Sequence[int] | Select[Any] | BindParameter[Any],
    now: datetime,
    publish_ms: float | None = None,
) -> Update:
    """The statement that marks rows `ids` delivered (those still pending); `ids` may be
    a query of them, or (PostgreSQL) one array parameter. `publish_ms`: how long their
    delivering try took, when that try is recorded on the rows rather than in
    `delivery_attempts`."""
    chosen = (
        DeliveryRow.id == any_(ids) if isinstance(ids, BindParameter) else DeliveryRow.id.in_(ids)
    )
    return (
        update(DeliveryRow)
        .where(chosen, _still_pending())
        .values(
            status=DeliveryStatus.DELIVERED.value,
            delivered_at=now,
            publish_ms=publish_ms,
            attempts=DeliveryRow.attempts + 1,
            # lease_owner stays: it tells which replica delivered the row.
            lease_until=None,
        )
    )


async def _mark_delivered(
    conn: AsyncConnection, ids: Sequence[int], now: datetime, publish_ms: float | None
) -> None:
    if not ids:
        return
    chosen: Sequence[int] | BindParameter[Any] = ids
    if conn.dialect.name == "postgresql":
        # One array parameter: the same statement text for every batch size, prepared once
        # per connection (a list becomes one parameter per id, a new statement per count).
        chosen = bindparam("delivered_ids", list(ids), type_=ARRAY(BigInteger))
    await conn.execute(delivered_update(chosen, now, publish_ms))


@dataclass(frozen=True, slots=True)
class Failure:
    delivery_id: int
    attempts: int  # counting the attempt that just failed
    outcome: Retry | DeadLetter
    error: str


class RelayWrites(Protocol):
    """The relay's frequent write transactions, run elsewhere than through the engine
    (SQLite: `store.relay_sqlite`)."""

    async def lease(self, values: dict[str, Any]) -> Sequence[tuple[int, int, int]]:
        """`lease_rows()` with these values: (id, attempts, event_seq) of each row."""
        ...

    async def settle(
        self,
        delivered: Sequence[int],
        failures: Sequence[Failure],
        attempts: Sequence[Attempt],
        now: datetime,
        publish_ms: float | None,
    ) -> None:
        """What `settle` does, in one transaction."""
        ...

    async def close(self) -> None:
        """Let go of the connection and the thread."""
        ...


async def mark_failed(engine: AsyncEngine, failures: Sequence[Failure]) -> None:
    if not failures:
        return
    async with begin(engine) as conn:
        await _mark_failed(conn, failures)


async def _mark_failed(conn: AsyncConnection, failures: Sequence[Failure]) -> None:
    for failure in failures:
        await conn.execute(failed_update(failure))


def failed_update(failure: Failure) -> Update:
    """The statement that sets a failed row to retry later, or dead (if still pending)."""
    values: dict[str, Any] = {
        "attempts": failure.attempts,
        "last_error": failure.error[:MAX_ERROR],
        "lease_owner": None,
        "lease_until": None,
    }
    if isinstance(failure.outcome, Retry):
        values["next_attempt_at"] = failure.outcome.at
    else:
        values["status"] = DeliveryStatus.DEAD.value
    return (
        update(DeliveryRow)
        .where(DeliveryRow.id == failure.delivery_id, _still_pending())
        .values(**values)
    )


async def release(engine: AsyncEngine, ids: Sequence[int], error: str) -> None:
    """Hand leased rows back untried: their sink could not be reached at all. Attempts and
    the next attempt time stay as they were, so an outage spends no retry budget and
    leaves no backoff behind; `last_error` says why they are still pending."""
    if ids:
        await _hand_back(engine, error, DeliveryRow.id.in_(ids), _still_pending())


async def release_owner(engine: AsyncEngine, owner: str, error: str) -> int:
    """Hand back, untried, every row `owner` holds: for a relay known to have exited
    (`serve`'s relay process), whose leases would keep its rows waiting until they run
    out. Returns how many rows were handed back."""
    return await _hand_back(
        engine, error, DeliveryRow.status == PENDING, DeliveryRow.lease_owner == owner,
        DeliveryRow.lease_until.is_not(None),
    )  # fmt: skip


async def _hand_back(engine: AsyncEngine, error: str, *where: ColumnElement[bool]) -> int:
    """Clear the lease of the rows `where` selects, saying why in `last_error`."""
    async with begin(engine) as conn:
        result = await conn.execute(
            update(DeliveryRow)
            .where(*where)
            .values(last_error=error[:MAX_ERROR], lease_owner=None, lease_until=None)
        )
    return int(result.rowcount or 0)
