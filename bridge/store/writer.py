"""The one writer: group commit for the ingest path.

Every webhook handler hands its request row and events to `EventWriter.write` and awaits
the commit. A single task drains whatever is queued into one transaction, so under load
hundreds of deliveries share one fsync, and nothing is acknowledged before it is durable.
Duplicates are decided by the `events.dedup_key` unique constraint (ON CONFLICT DO NOTHING),
within a batch and across replicas alike. The writer drives each batch's transaction
(`store.batch.BatchTransaction`) on a dedicated driver connection (`batch_sqlite`,
`batch_postgres`): one commit and few round trips per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.domain.events import Event
from bridge.domain.requests import InboundRequest, RequestStatus
from bridge.errors import ConfigurationError, StoreUnavailable
from bridge.metrics import WRITE_BATCH_SIZE
from bridge.store.batch import BatchBackend, Inserted, TableRows, event_row, request_row
from bridge.store.models import RequestRow
from bridge.store.sqlite import Synchronous

log = structlog.get_logger(__name__)

# Hooks: rows to write in the same transaction as new events (the outbox), and callbacks
# after the commit (wake-ups). Row hooks are pure: they return rows, the backend writes them.
RowsHook = Callable[[Sequence[Event]], Sequence[TableRows]]
CommittedHook = Callable[[Sequence[Event]], None]


def backend_for(database_url: str, *, sqlite_synchronous: Synchronous = "FULL") -> BatchBackend:
    """The batch backend for a SQLAlchemy database URL."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigurationError("the SQLite database must be a file")
        from bridge.store.batch_sqlite import SqliteBatchBackend

        return SqliteBatchBackend(url.database, sqlite_synchronous)
    if url.get_backend_name() == "postgresql":
        from bridge.store.batch_postgres import PostgresBatchBackend

        return PostgresBatchBackend(
            url.set(drivername="postgresql").render_as_string(hide_password=False)
        )
    raise ConfigurationError(f"unsupported database {url.get_backend_name()!r}")


@dataclass(slots=True)
class WriteResult:
    """What one submitted delivery became once committed: its new events (with `seq`) and
    how many of its events were duplicates."""

    request_id: str | None
    inserted: list[Event] = field(default_factory=list)
    duplicates: int = 0

    @property
    def status(self) -> RequestStatus:
        if self.duplicates and not self.inserted:
            return RequestStatus.DUPLICATE
        return RequestStatus.ACCEPTED


@dataclass(slots=True)
class _Job:
    request: InboundRequest | None
    events: list[Event]
    future: asyncio.Future[WriteResult]


@dataclass
class EventWriter:
    """Commits deliveries in batches; `write` returns once its delivery is committed."""

    backend: BatchBackend
    max_batch: int = 256
    max_pending: int = 20_000
    rejected_keep: int = 10_000
    in_transaction: list[RowsHook] = field(default_factory=list)
    committed: list[CommittedHook] = field(default_factory=list)
    _queue: asyncio.Queue[_Job] = field(init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _rejected_since_prune: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.max_pending)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-writer")

    async def stop(self) -> None:
        """Finish what is queued, then stop and close the backend."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.backend.close()

    def write(
        self, request: InboundRequest | None, events: Sequence[Event] = ()
    ) -> asyncio.Future[WriteResult]:
        """Queue a request and its events (ids and times already set); await the result to
        wait for the commit.

        A plain function returning the future rather than a coroutine: one frame less for
        every delivery to pass through when its batch commits.
        """
        if self._task is None:
            raise RuntimeError("EventWriter.start() was not called")
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(request, list(events), future))
        except asyncio.QueueFull:
            raise StoreUnavailable("too many deliveries waiting to be stored; try again") from None
        return future

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            try:
                await self._commit_batch(jobs)
            finally:
                for _ in jobs:
                    self._queue.task_done()

    async def _commit_batch(self, jobs: list[_Job]) -> None:
        try:
            results, inserted = await self._write(jobs)
            WRITE_BATCH_SIZE.observe(len(jobs))
        except Exception as exc:
            if len(jobs) > 1 and not isinstance(exc, StoreUnavailable):
                # One bad delivery must not fail its neighbours: retry each on its own.
                for job in jobs:
                    await self._commit_batch([job])
                return
            if not isinstance(exc, StoreUnavailable):
                # The type and the driver's code, not the message: it can quote the row,
                # and so the request.
                code = getattr(exc, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
                log.error("write failed", error_type=type(exc).__name__, code=code)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        for job, result in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)
        if inserted:
            for hook in self.committed:
                hook(inserted)

    async def _write(self, jobs: list[_Job]) -> tuple[list[WriteResult], list[Event]]:
        """One transaction: events, then the request rows and the rows that depend on which
        events were new (the outbox), then commit."""
        prune = self._prune_due(jobs)
        requests = [job.request for job in jobs if job.request is not None]
        expected = None
        if self.backend.requests_with_events:
            for job in jobs:
                if job.request is not None:
                    _settle(job.request, RequestStatus.ACCEPTED, len(job.events))
            expected = [request_row(r) for r in requests]
        tx = await self.backend.begin()
        try:
            new = await tx.insert_events(_first_of_each_key(jobs), expected)
            results, inserted = _results(jobs, new)
            for job, result in zip(jobs, results, strict=True):
                if job.request is not None:
                    _settle(job.request, result.status, len(result.inserted))
            extra = [rows for hook in self.in_transaction for rows in hook(inserted)]
            await tx.finish([request_row(r) for r in requests], extra if inserted else [], prune)
            await tx.commit(more_waiting=not self._queue.empty())
        except BaseException:
            await tx.rollback()
            raise
        return results, inserted

    def _prune_due(self, jobs: list[_Job]) -> int | None:
        """Every 100 rejected requests, how many to keep: they come from anyone, so only the
        newest `rejected_keep` are kept."""
        self._rejected_since_prune += sum(
            1 for job in jobs if job.request is not None and job.request.rejected
        )
        if self._rejected_since_prune < 100:
            return None
        self._rejected_since_prune = 0
        return self.rejected_keep


async def prune_rejected(conn: AsyncConnection, keep: int) -> None:
    """Delete all but the newest `keep` rejected requests (ids are ULIDs: time-ordered)."""
    rejected = RequestRow.status == RequestStatus.REJECTED.value
    boundary = (
        select(RequestRow.id)
        .where(rejected)
        .order_by(RequestRow.id.desc())
        .offset(keep)
        .limit(1)
        .scalar_subquery()
    )
    await conn.execute(delete(RequestRow).where(rejected, RequestRow.id <= boundary))


def _settle(request: InboundRequest, status: RequestStatus, event_count: int) -> None:
    request.status = RequestStatus.REJECTED if request.rejected else status
    request.event_count = event_count


def _first_of_each_key(jobs: list[_Job]) -> list[tuple[Any, ...]]:
    seen: set[str] = set()
    rows = []
    for job in jobs:
        for event in job.events:
            if event.dedup_key not in seen:
                seen.add(event.dedup_key)
                rows.append(event_row(event))
    return rows


def _results(jobs: list[_Job], new: Inserted) -> tuple[list[WriteResult], list[Event]]:
    claimed: set[str] = set()
    results: list[WriteResult] = []
    all_inserted: list[Event] = []
    for job in jobs:
        inserted: list[Event] = []
        duplicates = 0
        for event in job.events:
            key = event.dedup_key
            hit = new.get(key)
            # The first delivery in the batch that carried a key owns the new row; any
            # other (a concurrent duplicate) is a duplicate, like one from an earlier batch.
            if hit is not None and hit[0] == event.id and key not in claimed:
                claimed.add(key)
                event.seq = hit[1]
                inserted.append(event)
            else:
                duplicates += 1
        all_inserted.extend(inserted)
        request_id = job.request.id if job.request is not None else None
        results.append(WriteResult(request_id, inserted, duplicates))
    all_inserted.sort(key=lambda e: e.seq)
    return results, all_inserted
