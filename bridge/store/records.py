"""Plain records passed between the services and the store.

Built once per delivery on the hot path and never changed after; they are not `frozen`
because a frozen dataclass costs several microseconds more to build (measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.domain.events import ChangeEvent


@dataclass(slots=True)
class RequestRecord:
    """An inbound request as it will be stored (secrets already redacted)."""

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
    http_status: int
    reason: str | None = None
    verification: str | None = None
    rejected: bool = False


@dataclass(slots=True)
class NewEvent:
    """An event with the id chosen for it before it is stored."""

    id: str
    received_at: datetime
    change: ChangeEvent
    request_id: str | None


@dataclass(slots=True)
class InsertedEvent:
    id: str
    seq: int
    change: ChangeEvent
    received_at: datetime


@dataclass(slots=True)
class WriteResult:
    """What one submitted delivery became once committed."""

    request_id: str | None
    inserted: list[InsertedEvent] = field(default_factory=list)
    duplicates: int = 0

    @property
    def status(self) -> str:
        return "duplicate" if self.duplicates and not self.inserted else "accepted"


def event_row(event: NewEvent) -> tuple[Any, ...]:
    """The row in `batch.EVENT_COLUMNS` order."""
    change = event.change
    return (
        event.id,
        change.product.value,
        change.source,
        change.module,
        change.operation.value,
        change.record_id,
        change.occurred_at,
        event.received_at,
        change.origin.value,
        change.dedup_key,
        change.data,
        event.request_id,
    )
