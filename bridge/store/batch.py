"""What a batch writer backend implements, independent of the database driver.

The ingest path writes through a dedicated driver connection rather than SQLAlchemy: one
round trip (PostgreSQL) or one fsync on a thread (SQLite) per batch, and no ORM work on the
event-loop thread. Reads and everything else still go through SQLAlchemy.

The writer (`store.writer`) drives each batch's transaction through `BatchTransaction`:
begin, insert the events, write the request and outbox rows that depend on which events
were new, commit. Column lists (and their types) come from `store.models`, so a new column
is declared once; row builders read the attributes of the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import JSON

from bridge.domain.envelope import envelope_head
from bridge.domain.events import Event
from bridge.store.models import DeliveryRow, EventRow, RequestRow

# Every column but the sequence number, which the database assigns.
EVENT_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in EventRow.__table__.columns if c.name != "seq"
)
REQUEST_COLUMNS: tuple[str, ...] = tuple(c.name for c in RequestRow.__table__.columns)
JSON_COLUMNS: frozenset[str] = frozenset(
    c.name
    for table in (EventRow.__table__, RequestRow.__table__, DeliveryRow.__table__)
    for c in table.columns
    if isinstance(c.type, JSON)
)

# `Event` and `InboundRequest` name their attributes like the columns: a row is one C-level
# attribute fetch, in column order; an event's row ends with its envelope's head.
assert EVENT_COLUMNS[-1] == "envelope_head", EVENT_COLUMNS
_event_fields: attrgetter[tuple[Any, ...]] = attrgetter(*EVENT_COLUMNS[:-1])


def event_row(event: Event) -> tuple[Any, ...]:
    """The events row of `event`, in `EVENT_COLUMNS` order."""
    return (*_event_fields(event), envelope_head(event))


request_row: attrgetter[tuple[Any, ...]] = attrgetter(*REQUEST_COLUMNS)


MODELS = {"events": EventRow, "inbound_requests": RequestRow, "deliveries": DeliveryRow}


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows for one table, written in the same transaction as the events (e.g. the outbox).
    Values are plain Python: str, int, bool, bytes, None, aware datetime, dict or list."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


# {dedup_key: (event id, seq)} of the events a transaction inserted.
Inserted = dict[str, tuple[str, int]]


class BatchTransaction(Protocol):
    """One open transaction of a batch, driven by the writer in this order."""

    async def insert_events(
        self, events: list[tuple[Any, ...]], requests: list[tuple[Any, ...]] | None
    ) -> Inserted:
        """Insert event rows (ON CONFLICT (dedup_key) DO NOTHING) and report the new ones.

        `requests`, when the backend asked for them (`BatchBackend.requests_with_events`),
        are the request rows as they will be if every event is new: a backend may insert
        them in the same round trip and correct the few that differ in `finish`.
        """
        ...

    async def finish(
        self, requests: list[tuple[Any, ...]], extra: list[TableRows], prune_keep: int | None
    ) -> None:
        """Write the request rows as settled, the rows that depend on the new events (the
        outbox), and prune the oldest rejected requests beyond `prune_keep`."""
        ...

    async def commit(self, *, more_waiting: bool) -> None:
        """Commit. `more_waiting`: another batch is queued, so a backend may begin its
        transaction in the same round trip."""
        ...

    async def rollback(self) -> None:
        """Give up the transaction (after any error before `commit` returned)."""
        ...


class BatchBackend(Protocol):
    """Opens batch transactions on a dedicated connection, one at a time."""

    # Whether `insert_events` wants the expected request rows (PostgreSQL: one statement).
    requests_with_events: bool

    async def begin(self) -> BatchTransaction: ...

    async def close(self) -> None: ...
