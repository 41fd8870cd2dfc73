"""The tables. Plain mapped classes: no behaviour lives here.

Migrations in `migrations/` must match these exactly; a test runs `alembic check`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bridge.store.types import BigIntPK, JSONDoc, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONDoc}


class SourceRow(Base):
    """An inbound URL for Zoho Books workflow webhooks: /hooks/books/{name}."""

    __tablename__ = "books_sources"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 hex digests of the accepted tokens; the tokens themselves are never stored.
    token_hashes: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    # HMAC secrets, each encrypted with BRIDGE_SECRET_KEY (they are needed in clear to verify).
    secrets_encrypted: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    signature_mode: Mapped[str] = mapped_column(String(16), default="enforce")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The Zoho connection of the same Books organization: its polls and this source's
    # webhooks are matched, and its webhooks are keyed by record version.
    connection: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChannelRow(Base):
    """A Zoho CRM notification channel whose callbacks arrive at /hooks/crm."""

    __tablename__ = "crm_channels"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Zoho echoes channel_id as a string; compare it as one (zoho.md §1.2).
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    # The event source name ("zoho-bridge/crm/{source}").
    source: Mapped[str] = mapped_column(String(64), default="crm")
    events: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    managed: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"sha256": hex, "valid_until": iso8601 | null}]: several are valid during rotation.
    tokens: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    notify_url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Managed channels only: the connection that enables and renews it at Zoho.
    connection: Mapped[str | None] = mapped_column(String(64))
    # The current token, encrypted: renewals must re-send it (zoho.md §1.2).
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    # {"notify_on_related_action": bool, "return_affected_field_values": bool}
    options: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    renewals: Mapped[int] = mapped_column(Integer, default=0)
    last_renewed_at: Mapped[datetime | None]
    # Last time Zoho confirmed the channel live as we configured it (enable or listing).
    verified_at: Mapped[datetime | None]
    next_renewal_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    # Managed channels only: not live at Zoho since then (a problem was seen and is not
    # repaired yet). The gap is recorded from here when the channel is live again.
    down_since: Mapped[datetime | None]


class RequestRow(Base):
    """A delivery exactly as received (secrets redacted), accepted or not."""

    __tablename__ = "inbound_requests"
    __table_args__ = (
        Index(None, "status", "received_at"),
        Index(None, "received_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    received_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text, default="")
    headers: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_size: Mapped[int] = mapped_column(Integer)
    body_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    # How it was verified, e.g. "token ok; signature ok" or "token mismatch".
    verification: Mapped[str | None] = mapped_column(Text)
    event_count: Mapped[int] = mapped_column(Integer, default=0)


# A partial index's condition, written the same in the queries that use it.
NOT_WEBHOOK = text("origin != 'webhook'")


class EventRow(Base):
    """One change to one Zoho record. `seq` is the consumers' cursor."""

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "source", "module", "record_id"),
        Index(None, "received_at"),
        Index(None, "request_id"),
        # The selective filters of the admin events API and of pull subscriptions, each
        # ending in seq: "value = ? ORDER BY seq LIMIT n" walks the index and stops after n
        # rows, in time independent of the table's size, with or without statistics.
        # Each index costs every insert (~5 us an event on SQLite): operation and product,
        # a handful of values each, have none.
        Index(None, "record_id", "seq"),
        Index(None, "source", "seq"),
        Index(None, "module", "seq"),
        # Reconciled and replayed events only (webhook ones, nearly all, are not in it):
        # queries on another origin add the same condition so the planner can use it.
        Index(None, "origin", "seq", sqlite_where=NOT_WEBHOOK, postgresql_where=NOT_WEBHOOK),
        # SQLite's AUTOINCREMENT never reuses a sequence number, even after deletes.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(26), unique=True)
    product: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(64))
    module: Mapped[str] = mapped_column(String(100))
    operation: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    origin: Mapped[str] = mapped_column(String(16))
    # The database, not a cache, decides what is a duplicate (style.md §4).
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(26))
    # Reconciled events only: why no webhook announced the change (`MissCause`), and
    # whether the polled version may stand for several edits.
    miss_cause: Mapped[str | None] = mapped_column(String(16))
    collapsed: Mapped[bool | None] = mapped_column(Boolean)
    # The envelope's text up to its seq (`domain.envelope.envelope_head`), written with the
    # event so a read writes the envelope without quoting each field again. NULL for
    # reconciled events and for events stored before migration 0011: those are written
    # field by field (`store.events_envelope_sql`). Last: `store.batch.event_row` adds it.
    envelope_head: Mapped[str | None] = mapped_column(Text)


class ConnectionRow(Base):
    """One Zoho OAuth identity for one organisation in one data centre (secrets encrypted)."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    dc: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str] = mapped_column(String(200))
    client_secret_encrypted: Mapped[str] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str] = mapped_column(Text)
    organization_id: Mapped[str | None] = mapped_column(String(64))
    accounts_url: Mapped[str | None] = mapped_column(Text)
    api_domain: Mapped[str | None] = mapped_column(Text)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TokenRow(Base):
    """A connection's cached access token (encrypted) and its recent token-request times,
    shared by replicas so Zoho's ten-per-ten-minutes count holds across them (zoho.md §5)."""

    __tablename__ = "zoho_tokens"

    connection: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    api_domain: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    requested_at: Mapped[list[float]] = mapped_column(JSONDoc, default=list)


class BudgetKeyRow(Base):
    """One row per budget key: the row replicas lock before counting its window."""

    __tablename__ = "budget_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)


class BudgetSpendRow(Base):
    """Spending on a budget key at a time (epoch seconds); windows sum these rows."""

    __tablename__ = "budget_spend"
    __table_args__ = (Index(None, "key", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)
    cost: Mapped[int] = mapped_column(Integer)


class BudgetSlotRow(Base):
    """A leased concurrency slot on a budget key (CRM concurrency caps, zoho.md §6)."""

    __tablename__ = "budget_slots"
    __table_args__ = (Index(None, "key"),)

    slot: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    lease_until: Mapped[float] = mapped_column(Float)


class GapRow(Base):
    """A time span in which a managed channel was not live at Zoho, so callbacks may be
    missing; reconciliation covers these spans."""

    __tablename__ = "channel_gaps"
    __table_args__ = (Index(None, "channel_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    channel_id: Mapped[str] = mapped_column(String(64))
    connection: Mapped[str | None] = mapped_column(String(64))
    events: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    gap_from: Mapped[datetime]
    gap_to: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime]
    # When reconciliation polled the whole span (None: not yet).
    covered_at: Mapped[datetime | None]


# The partial indexes' conditions, each written so that only the statements meant for its
# index (which write the same text) can use it: a plain `status = 'pending'` implies
# neither. PostgreSQL with statistics taken while no row was pending (a new database, or
# a relay that keeps up) sees both indexes as empty, so any statement it could route
# through one did go there and filtered every pending row (migration 0010).
PENDING_ONLY = "(status || '') = 'pending'"  # the lane index: the claim's lane probe
UNDELIVERED = "lower(status) != 'delivered'"  # the status overview's per-sink counts
# A delivery's lane: its sink and record, the unit in which order is kept.
LANE = text("(sink || ' ' || record_key)")


class DeliveryRow(Base):
    """The transactional outbox: one row per event per push sink (and per replay)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The relay's claim: due rows of one sink, oldest first.
        Index(None, "sink", "status", "next_attempt_at"),
        # The ordering rule: the oldest pending row of each record, per sink, found by one
        # expression no other index holds (migration 0009 says why; `outbox.lane`).
        Index(
            "ix_deliveries_lane",
            LANE,
            "id",
            sqlite_where=text(PENDING_ONLY),
            postgresql_where=text(PENDING_ONLY),
        ),
        Index(None, "event_seq"),
        # The status overview's per-sink counts read only undelivered rows (delivered ones
        # stay until retention purges their event): bounded by the backlog, not history.
        Index(
            None,
            "sink",
            "status",
            "replay",
            "created_at",
            sqlite_where=text(UNDELIVERED),
            postgresql_where=text(UNDELIVERED),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.seq"))
    sink: Mapped[str] = mapped_column(String(32))
    # "source/module/record_id": rows sharing it are delivered one at a time, in id order.
    record_key: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    replay: Mapped[bool] = mapped_column(Boolean, default=False)
    # How long the publish that delivered it took, when that try is not a row of
    # `delivery_attempts` (batch sinks: `attempts.attempts_of` reads it back as one).
    publish_ms: Mapped[float | None] = mapped_column(Float)


class AttemptRow(Base):
    """One try to publish one delivery (domain/attempts.py); purged with its delivery."""

    __tablename__ = "delivery_attempts"
    # A delivery's attempts in the order they were made (numbered on reading).
    __table_args__ = (Index(None, "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("deliveries.id"))
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    latency_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    replica: Mapped[str | None] = mapped_column(String(64))


class SinkStateRow(Base):
    """A push sink's state: switched off because its subscriber answered 410 Gone, or
    found unreachable by a relay (so every process's status shows it)."""

    __tablename__ = "sink_states"

    sink: Mapped[str] = mapped_column(String(32), primary_key=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime]
    # Set while a relay finds the sink unreachable as a whole: since when, why, and when
    # and by which replica that was last confirmed (a probe).
    down_since: Mapped[datetime | None]
    down_reason: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None]
    checked_by: Mapped[str | None] = mapped_column(String(64))


class SubscriptionRow(Base):
    """A named pull consumer: its token digest, its filters, and how far it has acked."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(64))
    module: Mapped[str | None] = mapped_column(String(100))
    operation: Mapped[str | None] = mapped_column(String(16))
    acked_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WatchRow(Base):
    """A reconciliation watch: one connection, product and module, its cursor, schedule,
    listing strategy and lease (docs/reconciliation.md)."""

    __tablename__ = "reconcile_watches"
    __table_args__ = (Index(None, "connection", "product", "module", unique=True),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    connection: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(8))
    # CRM module API name (`Leads`) or Books webhook entity key (`invoice`).
    module: Mapped[str] = mapped_column(String(100))
    # active | paused | removed (an automatic watch an operator removed: not re-created)
    status: Mapped[str] = mapped_column(String(16), default="active")
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    # Books: filter | sorted | scan, why, and who chose it (probe, operator, switch).
    strategy: Mapped[str | None] = mapped_column(String(16))
    strategy_reason: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    # Nothing modified before `start_at` is in scope, except through a backfill.
    start_at: Mapped[datetime]
    watermark: Mapped[datetime | None]
    ids_at_watermark: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    # Versions listed but still in their grace period, checked again by the next run
    # without listing their span again: [{"id", "t", "c", "d"}] (docs/reconciliation.md).
    pending: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    # CRM deletions (`/{module}/deleted`) have a cursor of their own.
    deletes_watermark: Mapped[datetime | None]
    deletes_ids: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    deletes_checked_at: Mapped[datetime | None]
    # Books deletion sweep: when the last complete sweep ran.
    swept_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    # Zoho's Date at the start of the last completed run.
    last_zoho_date: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    deferred_until: Mapped[datetime | None]
    deferred_reason: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WatchDayRow(Base):
    """What one watch did on one UTC day: calls, credits, versions seen, misses by cause."""

    __tablename__ = "reconcile_days"

    watch_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("reconcile_watches.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failed_runs: Mapped[int] = mapped_column(Integer, default=0)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    versions: Mapped[int] = mapped_column(Integer, default=0)
    missed: Mapped[int] = mapped_column(Integer, default=0)
    gap: Mapped[int] = mapped_column(Integer, default=0)
    not_subscribed: Mapped[int] = mapped_column(Integer, default=0)
    delivery_failed: Mapped[int] = mapped_column(Integer, default=0)


class RunRow(Base):
    """An on-demand reconciliation run or backfill: its scope, state, progress and where
    it stands, so it resumes after a restart."""

    __tablename__ = "reconcile_runs"
    __table_args__ = (Index(None, "state"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    connection: Mapped[str | None] = mapped_column(String(64))
    module: Mapped[str | None] = mapped_column(String(100))
    since: Mapped[datetime | None]
    until: Mapped[datetime | None]
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    position: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class SweepRecordRow(Base):
    """Books deletion sweep: a record id the last complete sweeps saw (or missed)."""

    __tablename__ = "sweep_records"

    watch_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("reconcile_watches.id", ondelete="CASCADE"), primary_key=True
    )
    record_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    modified_at: Mapped[datetime | None]
    misses: Mapped[int] = mapped_column(Integer, default=0)


class HeartbeatRow(Base):
    """When each replica last said it was running: gaps between them are bridge downtime."""

    __tablename__ = "heartbeats"

    replica: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime]


class DowntimeRow(Base):
    """A span in which no replica of the bridge was running (so nothing was received)."""

    __tablename__ = "downtime"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    down_from: Mapped[datetime]
    down_to: Mapped[datetime]
    recorded_at: Mapped[datetime]


class RelayRateRow(Base):
    """What one running relay last reported of a push sink: the events per second the
    sink confirmed to it over the last minute. Every relay (in `serve`, or a process of
    its own on any machine) reports, so every process's status shows the sink's rate."""

    __tablename__ = "relay_rates"

    relay: Mapped[str] = mapped_column(String(64), primary_key=True)
    sink: Mapped[str] = mapped_column(String(32), primary_key=True)
    per_second: Mapped[float] = mapped_column(Float)
    reported_at: Mapped[datetime]
