"""The sandbox's data: orgs, records, channels, and what it received and delivered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any


class SandboxClock:
    """Wall-clock time plus an offset tests can advance, so nothing has to sleep.

    Record times are whole seconds (`dt`), like Zoho's (reconciliation.md C2); `freeze`
    stops the wall clock so many changes can share one second on purpose.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        """Epoch seconds."""
        base = self._frozen_at if self._frozen_at is not None else time.time()
        return base + self.offset

    def dt(self) -> datetime:
        """The current time as an aware UTC datetime, whole seconds."""
        return datetime.fromtimestamp(int(self.now()), UTC)

    def advance(self, seconds: float) -> None:
        """Move the sandbox's time forward."""
        self.offset += seconds

    def freeze(self) -> None:
        """Stop the wall clock at the start of the current second; only `advance` moves
        time from now on."""
        self._frozen_at = float(int(time.time()))


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
    """One CRM record: its id, times, field values, and what the read APIs see of it.

    A change can become visible to list and COQL reads only at `visible_at` (epoch
    seconds): until then they see `shown`, the version visible before the change, or
    nothing for a new record (reconciliation.md C15).
    """

    id: str
    created: datetime
    modified: datetime
    fields: dict[str, Any]
    converted: bool = False
    visible_at: float = 0.0
    shown: CrmRecord | None = None

    def view(self, now: float) -> CrmRecord | None:
        """The version the list and COQL APIs return at `now`, or None."""
        return self if now >= self.visible_at else self.shown

    def snapshot(self) -> CrmRecord:
        """A frozen copy of this version (no history of its own)."""
        return replace(self, fields=dict(self.fields), visible_at=0.0, shown=None)

    def render(self, names: list[str] | None = None) -> dict[str, Any]:
        """The record as CRM returns it, limited to `names` when given."""
        values = self.fields if names is None else {k: self.fields.get(k) for k in names}
        rendered = {
            **values,
            "id": self.id,
            "Created_Time": self.created.isoformat(),
            "Modified_Time": self.modified.isoformat(),
        }
        if names is None and self.converted:
            rendered["Converted__s"] = True  # Zoho's system field for converted leads
        return rendered


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
    # (entity path, URL, the actions that fire it: insert, update, delete)
    books_webhooks: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    channels: dict[str, Channel] = field(default_factory=dict)
    token_requests: dict[str, list[float]] = field(default_factory=dict)
    books_calls: list[float] = field(default_factory=list)
    crm_inflight: int = 0
    # (time, credits) of every CRM call answered: 1 a call, COQL by its LIMIT band.
    crm_credit_log: list[tuple[float, int]] = field(default_factory=list)
    # Books webhook deliveries that failed, as "List failed workflow actions" shows them.
    failed_actions: list[dict[str, Any]] = field(default_factory=list)


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


@dataclass(frozen=True)
class Change:
    """One version a record change produced: what a poller should find or a callback
    should announce. `module` is the CRM module or the Books webhook key (`invoice`);
    `operation` is `insert`, `update` or `delete` for both products; `modified` is the
    record's Modified_Time / last_modified_time after the change (deletes: delete time)."""

    product: str
    org: str
    module: str
    record_id: str
    operation: str
    modified: datetime


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
    change: Change | None = None


@dataclass(frozen=True)
class PageToken:
    """A CRM page token: where the next page starts, the query it is bound to, and when
    it expires (valid 24 h and user-specific; api-evangelist conventions from the v8 Get
    Records page, UNCERTAIN)."""

    org: str
    module: str
    offset: int
    query: tuple[tuple[str, str], ...]
    expires_at: float


@dataclass(frozen=True)
class PageServed:
    """What the sandbox just answered to a CRM list or COQL call (for `on_page` hooks)."""

    org: str
    module: str
    kind: str  # "list" or "coql"
    page: int
    ids: list[str]


@dataclass
class BooksEntitySettings:
    """How the sandbox's Books answers lists of one entity (the sources disagree on what
    each entity supports: reconciliation.md B1-B4).

    `filter`: what `last_modified_time=T` means: `at_or_after` (rows modified at or after
    T, assumed by Airbyte/Nango/Pipedream for invoices and bills), `equal` (only rows
    modified exactly at T, as hotglue saw on journals), `ignored` (no effect).
    `sortable`: whether `sort_column=last_modified_time` is accepted (else HTTP 400).
    """

    filter: str = "at_or_after"
    sortable: bool = True
