"""The sandbox's data: orgs, records, channels, and what it received and delivered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class SandboxClock:
    """Wall-clock time plus an offset tests can advance, so nothing has to sleep."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Epoch seconds."""
        return time.time() + self.offset

    def dt(self) -> datetime:
        """The current time as an aware UTC datetime, whole seconds."""
        return datetime.fromtimestamp(int(self.now()), UTC)

    def advance(self, seconds: float) -> None:
        """Move the sandbox's time forward."""
        self.offset += seconds


@dataclass
class Channel:
    """A CRM notification channel as the sandbox keeps it."""

    channel_id: str
    events: list[str]
    notify_url: str
    expiry: datetime
    token: str | None = None
    return_affected_field_values: bool = False
    notify_on_related_action: bool = True
    notification_condition: Any = None


@dataclass
class CrmRecord:
    """One CRM record: its id, times and field values."""

    id: str
    created: datetime
    modified: datetime
    fields: dict[str, Any]

    def render(self, names: list[str] | None = None) -> dict[str, Any]:
        """The record as CRM returns it, limited to `names` when given."""
        values = self.fields if names is None else {k: self.fields.get(k) for k in names}
        return {
            **values,
            "id": self.id,
            "Created_Time": self.created.isoformat(),
            "Modified_Time": self.modified.isoformat(),
        }


@dataclass
class Org:
    """A fake Zoho organisation: credentials, limits and data for CRM and Books."""

    name: str
    dc: str
    client_id: str
    client_secret: str
    refresh_tokens: set[str]
    organization_id: str
    books_per_minute: int = 100
    books_daily: int = 1000
    crm_concurrency: int = 10
    crm_delay: float = 0.0
    # False: tokens lack the CRM scopes, so every CRM call is refused with a 401.
    crm_scope: bool = True
    crm_records: dict[str, dict[str, CrmRecord]] = field(default_factory=dict)
    crm_deleted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    books_records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    books_webhooks: list[tuple[str, str]] = field(default_factory=list)
    channels: dict[str, Channel] = field(default_factory=dict)
    token_requests: dict[str, list[float]] = field(default_factory=dict)
    books_calls: list[float] = field(default_factory=list)
    crm_inflight: int = 0


@dataclass(frozen=True)
class Grant:
    """An access token the accounts server issued."""

    org: str
    dc: str
    expires_at: float
    refresh_token: str


@dataclass(frozen=True)
class Hit:
    """One request the sandbox answered."""

    at: float
    dc: str
    org: str | None
    label: str
    status: int


@dataclass
class Delivery:
    """One callback the sandbox meant to send, and what became of it."""

    kind: str  # "crm" or "books"
    org: str
    url: str
    payload: dict[str, Any]
    channel_id: str | None = None
    outcome: str = "pending"  # pending, delivered, dropped, failed
    status: int | None = None
