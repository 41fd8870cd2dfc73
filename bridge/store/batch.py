"""What a batch writer backend does, independent of the database driver.

The ingest path writes through a dedicated driver connection rather than SQLAlchemy: one
round trip (PostgreSQL) or one fsync on a thread (SQLite) per batch, and no ORM work on the
event-loop thread. Reads and everything else still go through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

EVENT_COLUMNS = (
    "id", "product", "source", "module", "operation", "record_id", "occurred_at",
    "received_at", "origin", "dedup_key", "data", "request_id",
)  # fmt: skip
# Row builders (records.event_row, writer._request_row) follow these orders; a test checks.
REQUEST_COLUMNS = (
    "id", "received_at", "kind", "source", "method", "path", "query", "headers", "body",
    "body_size", "body_truncated", "remote_addr", "status", "http_status", "reason",
    "verification", "event_count",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows for one table, written in the same transaction as the events (e.g. the outbox).
    Values are plain Python: str, int, bool, bytes, None, aware datetime, dict or list."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Rows that depend on which events were new, written in the same transaction."""

    requests: list[tuple[Any, ...]]  # in REQUEST_COLUMNS order
    extra: list[TableRows]


# Given {dedup_key: (event id, seq)} of the events just inserted, the rows to add. Pure and
# quick: it runs between the inserts, inside the open transaction, on the event loop.
FollowUpFn = Callable[[dict[str, tuple[str, int]]], FollowUp]


@dataclass(slots=True)
class Batch:
    """One transaction's worth of deliveries, as a backend writes it."""

    events: list[tuple[Any, ...]]  # in EVENT_COLUMNS order, first of each dedup key
    follow_up: FollowUpFn
    # The request rows as they will be if every event is new (the usual case), for a
    # backend that inserts them with the events and corrects the few that differ.
    expected_requests: Callable[[], list[tuple[Any, ...]]]
    prune_rejected_keep: int | None = None
    # Asked just before the commit: is another batch already queued? A backend may then
    # begin the next transaction in the same round trip.
    more_waiting: Callable[[], bool] = lambda: False


class BatchBackend(Protocol):
    """Writes one batch atomically: events (ON CONFLICT DO NOTHING), then the follow-up."""

    async def write(self, batch: Batch) -> None: ...

    async def close(self) -> None: ...
