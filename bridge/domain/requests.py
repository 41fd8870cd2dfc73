"""The inbound request: one HTTP request sent to a webhook endpoint, stored as received
(secrets redacted) whether it was accepted or not. Its table is `store.models.RequestRow`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RequestStatus(StrEnum):
    ACCEPTED = "accepted"  # stored, with at least one new event (or none to make: a ping)
    DUPLICATE = "duplicate"  # every event it carried was stored before
    REJECTED = "rejected"  # refused: failed verification, malformed, unknown source...


@dataclass(slots=True)  # not frozen: built per delivery, and frozen init costs more
class InboundRequest:
    """An inbound request as stored. Built by ingest once secrets are redacted; `status`
    and `event_count` are settled by the writer when it knows which events were new."""

    id: str
    received_at: datetime
    kind: str  # the product: "crm" or "books"
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
    status: str = RequestStatus.ACCEPTED
    event_count: int = 0
