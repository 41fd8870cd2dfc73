"""Reading back what the bridge stored: events and inbound requests, filtered and paged."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.events import EventFilter, StoredEvent
from bridge.domain.requests import InboundRequest
from bridge.errors import NotFound
from bridge.store import event_queries


@dataclass
class EventQueries:
    """Stored events, newest first (or oldest first after a consumer's cursor)."""

    engine: AsyncEngine

    async def find(
        self,
        where: EventFilter,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        return await event_queries.list_events(
            self.engine, where, before_seq=before_seq, after_seq=after_seq, limit=limit
        )

    async def get(self, event_id: str) -> StoredEvent:
        """By ULID `id`, or by `seq` when given digits."""
        found = await event_queries.get_event(self.engine, event_id)
        if found is None:
            raise NotFound(f"no event {event_id}")
        return found


@dataclass
class RequestQueries:
    """Stored inbound requests (accepted, duplicate, rejected), newest first."""

    engine: AsyncEngine

    async def find(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        source: str | None = None,
        before_id: str | None = None,
        limit: int = 100,
    ) -> list[InboundRequest]:
        return await event_queries.list_requests(
            self.engine, status=status, kind=kind, source=source, before_id=before_id,
            limit=limit,
        )  # fmt: skip

    async def get(self, request_id: str) -> InboundRequest:
        found = await event_queries.get_request(self.engine, request_id)
        if found is None:
            raise NotFound(f"no request {request_id}")
        return found
