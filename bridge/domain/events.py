"""The event: one change to one Zoho record, before and after it is stored.

`Event` is what the payload parsers (and the reconciliation poller) build; the writer gives
it its `seq` when it is inserted. `StoredEvent` is an event read back from the store: what
envelopes, views and consumers are made from. The table itself is `store.models.EventRow`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bridge.errors import InvalidInput


class Product(StrEnum):
    CRM = "crm"
    BOOKS = "books"


class Operation(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    # The sender did not say which (or said something we do not know; the raw word is kept).
    CHANGED = "changed"


class Origin(StrEnum):
    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"
    REPLAY = "replay"


@dataclass(slots=True)  # not frozen: one per delivered record, and frozen init costs 3x
class Event:
    """One change to one Zoho record, on its way to the store. Treated as immutable once
    queued, except for `seq`, which the writer sets when the row is inserted.

    `dedup_key` is unique in the database: a second event with the same key is a duplicate.
    `data` is what Zoho sent for this record. `id` (a ULID, the subscribers' dedup key),
    `received_at` and `request_id` (the inbound request it came in) are set when it is
    queued for the writer.
    """

    product: Product
    source: str
    module: str
    operation: Operation
    record_id: str
    occurred_at: datetime
    origin: Origin
    dedup_key: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    received_at: datetime | None = None
    request_id: str | None = None
    seq: int = 0  # 0 until stored
    # Reconciled events only: the `MissCause`, and whether the version may hide edits.
    miss_cause: str | None = None
    collapsed: bool | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored, with its per-database sequence number `seq`.

    `id` is the subscribers' dedup key: it stays the same across retries and replays. The
    same stored row always gives the same envelope.
    """

    id: str
    seq: int
    product: Product
    source: str
    module: str
    operation: Operation
    record_id: str
    occurred_at: datetime
    origin: Origin
    data: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None
    dedup_key: str = ""
    request_id: str | None = None
    miss_cause: str | None = None
    collapsed: bool | None = None

    def __post_init__(self) -> None:
        # A naive time would be silently read as local time when serialised.
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise InvalidInput(f"event {self.id}: occurred_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which stored events a query, a replay or a subscription wants (None: any)."""

    source: str | None = None
    module: str | None = None
    record_id: str | None = None
    operation: str | None = None
    origin: str | None = None
    product: str | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    request_id: str | None = None  # the events one inbound request produced
