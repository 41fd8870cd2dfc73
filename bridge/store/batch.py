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
# quick: on SQLite it runs on the writer thread, inside the open transaction.
FollowUpFn = Callable[[dict[str, tuple[str, int]]], FollowUp]


class BatchBackend(Protocol):
    """Writes one batch atomically: events (ON CONFLICT DO NOTHING), then the follow-up."""

    async def write(
        self,
        events: list[tuple[Any, ...]],
        follow_up: FollowUpFn,
        prune_rejected_keep: int | None,
        more_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        """`more_waiting()`, asked just before the commit, says whether another batch is
        already queued: a backend may then begin its transaction in the same round trip."""
        ...

    async def close(self) -> None: ...
