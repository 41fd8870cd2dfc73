"""The ingest path: verify first, then parse, then store; answer only after the commit.

Every delivery is recorded, accepted or not. A rejected one that failed verification is
kept truncated (anyone can send junk); one that passed verification is kept whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from bridge.domain import books_payload, books_signature, crm_callback, jsonx
from bridge.domain.credentials import matches_any, valid_digests
from bridge.domain.events import Event, Operation, Product
from bridge.domain.ids import new_ulid
from bridge.domain.reconcile_key import version_key
from bridge.domain.redaction import redact_headers, redact_query, scrub_body, truncate_headers
from bridge.domain.requests import InboundRequest, RequestStatus
from bridge.domain.states import ChannelStatus
from bridge.errors import (
    BridgeError,
    MalformedRequest,
    NotFound,
    StoreUnavailable,
    VerificationFailed,
)
from bridge.services.lookup import Lookup
from bridge.services.sources import NAME_PATTERN
from bridge.store.writer import EventWriter, WriteResult

log = structlog.get_logger(__name__)

TOKEN_PARAMETER = "token"
TOKEN_HEADER = "x-bridge-token"
MAX_FIELD = 100  # module and record id columns
MAX_DEDUP_KEY = 400  # the events.dedup_key column
MAX_CHANNEL_ID = 64  # the crm_channels.channel_id column (and the import rule)
MAX_REMOTE_ADDR = 64  # the inbound_requests.remote_addr column


@dataclass(slots=True)  # not frozen: built per delivery (see store/records.py)
class RawRequest:
    """A webhook request as the web layer read it."""

    method: str
    path: str
    query_string: str
    query: tuple[tuple[str, str], ...]
    headers: Sequence[tuple[str, str]]  # names in lower case, as ASGI gives them
    body: bytes
    content_type: str | None
    remote_addr: str | None
    received_at: datetime

    def header(self, name: str) -> str | None:
        """The first value of the header `name` (lower case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None


@dataclass(slots=True)  # not frozen: built per delivery
class IngestOutcome:
    status: RequestStatus  # accepted | duplicate
    request_id: str | None
    event_ids: list[str] = field(default_factory=list)
    duplicates: int = 0


class Rejected(BridgeError):
    """Wraps the reason a delivery was refused, once it has been recorded."""

    def __init__(self, cause: BridgeError, request_id: str | None) -> None:
        super().__init__(cause.message)
        self.cause = cause
        self.request_id = request_id


def _unmapped(error: BridgeError) -> int:
    """For a runtime without a web layer (one-shot CLI commands), which ingests nothing."""
    return 500


@dataclass
class IngestService:
    """Verify, parse and store webhook deliveries. `status_of` is the web layer's mapping
    from error to HTTP status, recorded with each rejected request (only the web layer
    decides statuses)."""

    writer: EventWriter
    lookup: Lookup
    clock: Callable[[], datetime]
    rejected_body_bytes: int = 4096
    status_of: Callable[[BridgeError], int] = _unmapped

    async def books(self, source_name: str, raw: RawRequest) -> IngestOutcome:
        verified: list[str] = []
        secrets: Sequence[str] = ()
        # A name no source can have (a NUL, 65 characters...) is not looked up, nor stored.
        possible = NAME_PATTERN.fullmatch(source_name) is not None
        try:
            source = await self.lookup.source(source_name) if possible else None
            if source is None or not source.info.enabled:
                raise NotFound(f"no Books source named {source_name!r}")
            secrets = source.secrets
            # Verify first, parse after: whatever the body, an unverified caller gets 401.
            verified = _verify_books(
                source.info.token_hashes, source.secrets, source.info.signature_mode, raw
            )
            decoded = books_payload.decode_body(raw.content_type, raw.body)
            operation = books_payload.operation_from_parameter(raw.param("event"))
            events: list[Event] = []
            if decoded.payload is not None:
                event = books_payload.to_event(
                    decoded.payload,
                    source=source_name,
                    operation=operation,
                    received_at=raw.received_at,
                    entity_hint=raw.param("entity"),
                    unstorable=decoded.unstorable,
                )
                if source.info.connection is not None:
                    _key_by_version(event, source.info.connection)
                events.append(event)
            _check_lengths(events)
        except BridgeError as exc:
            shown = source_name if possible else None
            raise await self._reject(raw, "books", shown, exc, verified, secrets) from exc
        stored = self._store(raw, "books", source_name, events, "; ".join(verified), secrets)
        return _ingest_outcome(await stored)

    async def crm(self, raw: RawRequest) -> IngestOutcome:
        verified: list[str] = []
        token: str | None = None
        try:
            callback = crm_callback.parse_callback(raw.body)
            token = callback.token
            if len(callback.channel_id) > MAX_CHANNEL_ID:  # no channel has such an id
                raise NotFound(f"unknown channel {callback.channel_id[:MAX_CHANNEL_ID]}...")
            channel = await self.lookup.channel(callback.channel_id)
            if channel is None or channel.status is ChannelStatus.DISABLED:
                raise NotFound(f"unknown channel {callback.channel_id}")
            digests = valid_digests(channel.tokens, raw.received_at)
            if not token:
                raise VerificationFailed("token is missing")
            if not matches_any(token, digests):
                # A rotation on another replica is valid from the moment it is sent, and
                # this replica's cached copy may predate it: look once more, uncached.
                self.lookup.forget_channel(callback.channel_id)
                fresh = await self.lookup.channel(callback.channel_id)
                if fresh is None or fresh.status is ChannelStatus.DISABLED:
                    raise NotFound(f"unknown channel {callback.channel_id}")
                channel = fresh
                if not matches_any(token, valid_digests(channel.tokens, raw.received_at)):
                    raise VerificationFailed("token does not match the channel's token")
            verified.append("token ok")
            events = crm_callback.to_events(
                callback, source=channel.source, received_at=raw.received_at, body=raw.body
            )
            _check_lengths(events)
        except BridgeError as exc:
            raise await self._reject(
                raw, "crm", None, exc, verified, [token] if token else []
            ) from exc
        stored = self._store(
            raw, "crm", channel.source, events, "; ".join(verified), [token] if token else []
        )
        return _ingest_outcome(await stored)

    def _store(
        self,
        raw: RawRequest,
        kind: str,
        source: str,
        events: list[Event],
        verification: str,
        secrets: Sequence[str],
    ) -> asyncio.Future[WriteResult]:
        """Queue the delivery for the writer (the caller awaits the commit: no coroutine
        of its own here, so a committed delivery resumes through fewer frames)."""
        record = _record(raw, kind, source, secrets, http_status=200, verification=verification)
        for event in events:
            event.id = new_ulid(raw.received_at)
            event.request_id = record.id
        return self.writer.write(record, events)

    async def _reject(
        self,
        raw: RawRequest,
        kind: str,
        source: str | None,
        error: BridgeError,
        verified: list[str],
        secrets: Sequence[str],
    ) -> Rejected:
        authenticated = bool(verified)
        record = _record(
            raw,
            kind,
            source,
            secrets,
            http_status=self.status_of(error),
            verification="; ".join(verified) or _outcome(error),
            reason=error.message,
            rejected=True,
            keep_bytes=None if authenticated else self.rejected_body_bytes,
        )
        return await self.record_rejection(record, error)

    async def refuse(
        self, raw: RawRequest, kind: str, source: str | None, error: BridgeError
    ) -> Rejected:
        """Record a delivery refused before it reached verification (e.g. too large), or
        one that failed on a bug (`error` then says only the exception's type): kept as
        an unverified one is, truncated."""
        if source is not None and NAME_PATTERN.fullmatch(source) is None:
            source = None
        return await self._reject(raw, kind, source, error, [], [])

    async def record_rejection(self, record: InboundRequest, error: BridgeError) -> Rejected:
        if isinstance(error, StoreUnavailable):
            return Rejected(error, None)
        try:
            await self.writer.write(record)
        except Exception as store_error:
            # The rejection stands whether or not it could be recorded. Only the type is
            # logged: a driver's message can quote the request.
            kind = type(store_error).__name__
            log.warning("could not record a rejected request", error_type=kind)
            return Rejected(error, None)
        return Rejected(error, record.id)


def _ingest_outcome(result: WriteResult) -> IngestOutcome:
    return IngestOutcome(
        status=result.status,
        request_id=result.request_id,
        event_ids=[e.id for e in result.inserted],
        duplicates=result.duplicates,
    )


def _outcome(error: BridgeError) -> str:
    return f"failed: {error.message}" if isinstance(error, VerificationFailed) else "not verified"


def _verify_books(
    token_hashes: Sequence[str], secrets: Sequence[str], signature_mode: str, raw: RawRequest
) -> list[str]:
    """Every configured method must pass (a signature in `report` mode is only recorded).
    Runs on the raw request, before the body is parsed."""
    outcome: list[str] = []
    if token_hashes:
        presented = raw.param(TOKEN_PARAMETER) or raw.header(TOKEN_HEADER)
        if not presented:
            raise VerificationFailed(
                f"token is missing (send it as ?{TOKEN_PARAMETER}= or the X-Bridge-Token header)"
            )
        if not matches_any(presented, token_hashes):
            raise VerificationFailed("token does not match")
        outcome.append("token ok")
    if secrets:
        form = books_payload.signed_fields(raw.content_type, raw.body)
        params = list(raw.query) + list(form)
        body = b"" if form else raw.body
        presented = raw.header(books_signature.SIGNATURE_HEADER)
        ok = books_signature.verify(presented, secrets, params, body)
        if ok:
            outcome.append("signature ok")
        elif signature_mode == "enforce":
            raise VerificationFailed(
                "X-Zoho-Webhook-Signature is missing"
                if not presented
                else "X-Zoho-Webhook-Signature does not match"
            )
        else:
            outcome.append("signature failed (report only)")
    return outcome


def _key_by_version(event: Event, connection: str) -> None:
    """A source linked to a connection keys its events by record version, like the
    reconciliation of that connection does: a webhook arriving after its version was
    reconciled is then a duplicate, not a second event (docs/reconciliation.md). Without
    a usable `last_modified_time` the content key stays."""
    modified = books_payload.parse_books_time(event.data.get("last_modified_time"))
    if modified is None or modified.microsecond:
        return
    try:
        event.dedup_key = version_key(
            connection, Product.BOOKS, event.module, event.record_id, modified.astimezone(UTC),
            deleted=event.operation is Operation.DELETED,
        )  # fmt: skip
    except ValueError:
        return  # an empty module or id: _check_lengths and the parser say what is wrong


def _check_lengths(events: list[Event]) -> None:
    """Before the database sees them: a value too long for its column is a 400, not a
    driver error (PostgreSQL refuses it; SQLite would store it whole)."""
    for event in events:
        if len(event.module) > MAX_FIELD or len(event.record_id) > MAX_FIELD:
            raise MalformedRequest(f"module and record id must be at most {MAX_FIELD} characters")
        if len(event.dedup_key) > MAX_DEDUP_KEY:  # the parsers' bounds keep it within
            raise MalformedRequest("the record's identifying fields are too long")


def _record(
    raw: RawRequest,
    kind: str,
    source: str | None,
    secrets: Sequence[str],
    *,
    http_status: int,
    verification: str,
    reason: str | None = None,
    rejected: bool = False,
    keep_bytes: int | None = None,
) -> InboundRequest:
    secret_values = list(secrets)
    for name, value in raw.query:
        if name == TOKEN_PARAMETER:
            secret_values.append(value)
    header_token = raw.header(TOKEN_HEADER)
    if header_token:
        secret_values.append(header_token)
    body = raw.body if keep_bytes is None else raw.body[:keep_bytes]
    headers = redact_headers(raw.headers)
    if keep_bytes is not None:
        # Like the body: anyone can send 16 KiB of junk headers.
        headers = truncate_headers(headers, keep_bytes)
    remote_addr = raw.remote_addr
    if remote_addr is not None:  # X-Forwarded-For from a trusted proxy can hold anything
        remote_addr = jsonx.escape_text(remote_addr[:MAX_REMOTE_ADDR])[:MAX_REMOTE_ADDR]
    # Text columns take no NUL on PostgreSQL and nothing that is not UTF-8 on either
    # database: a path can hold `%00`, and messages can quote what was sent.
    return InboundRequest(
        id=new_ulid(raw.received_at),
        received_at=raw.received_at,
        kind=kind,
        source=source,
        method=raw.method,
        path=jsonx.escape_text(raw.path),
        query=jsonx.escape_text(redact_query(raw.query_string)),
        headers=headers,
        body=scrub_body(body, secret_values),
        body_size=len(raw.body),
        body_truncated=len(body) < len(raw.body),
        remote_addr=remote_addr,
        http_status=http_status,
        reason=None if reason is None else jsonx.escape_text(reason),
        verification=jsonx.escape_text(verification),
        rejected=rejected,
        status=RequestStatus.REJECTED if rejected else RequestStatus.ACCEPTED,
    )
