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


class EventRow(Base):
    """One change to one Zoho record. `seq` is the consumers' cursor."""

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "source", "module", "record_id"),
        Index(None, "received_at"),
        Index(None, "request_id"),
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


class DeliveryRow(Base):
    """The transactional outbox: one row per event per push sink (and per replay)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The relay's claim: due rows of one sink, oldest first.
        Index(None, "sink", "status", "next_attempt_at"),
        # The ordering rule: the oldest pending row of each record, per sink.
        Index(None, "sink", "status", "record_key", "id"),
        Index(None, "event_seq"),
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


class SinkStateRow(Base):
    """A push sink switched off because its subscriber answered 410 Gone."""

    __tablename__ = "sink_states"

    sink: Mapped[str] = mapped_column(String(32), primary_key=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime]


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
