"""The JSON shapes of stored objects, shared by the admin API and the CLI (never a secret).

Services return records; the web layer and the CLI both shape them here, so an object
looks the same whichever way an operator asks for it.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from bridge.domain.attempts import Attempt
from bridge.domain.events import StoredEvent
from bridge.domain.requests import InboundRequest
from bridge.domain.states import ChannelState, ChannelStatus, ConnectionStatus
from bridge.services.deliveries import Status
from bridge.store.channels import ChannelInfo
from bridge.store.connections import ConnectionInfo
from bridge.store.managed_channels import Gap, ManagedChannel
from bridge.store.outbox_queries import DeliveryInfo
from bridge.store.sources import SourceInfo
from bridge.store.subscriptions import SubscriptionInfo
from bridge.zoho.datacentres import data_centre


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def source_view(info: SourceInfo, base_url: str) -> dict[str, Any]:
    return {
        "name": info.name,
        "hook_url": f"{base_url}/hooks/books/{info.name}",
        "tokens": len(info.token_hashes),
        "secrets": len(info.secrets_encrypted),
        "signature_mode": info.signature_mode,
        "enabled": info.enabled,
        "connection": info.connection,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
    }


def channel_view(info: ChannelInfo) -> dict[str, Any]:
    return {
        "channel_id": info.channel_id,
        "source": info.source,
        "events": list(info.events),
        "managed": info.managed,
        "tokens": [{"valid_until": iso(t.valid_until)} for t in info.tokens],
        "notify_url": info.notify_url,
        "expires_at": iso(info.expires_at),
        "status": info.status,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
    }


def event_view(event: StoredEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "id": event.id,
        "product": event.product,
        "source": event.source,
        "module": event.module,
        "operation": event.operation,
        "record_id": event.record_id,
        "occurred_at": iso(event.occurred_at),
        "received_at": iso(event.received_at),
        "origin": event.origin,
        "dedup_key": event.dedup_key,
        "request_id": event.request_id,
        "miss_cause": event.miss_cause,
        "collapsed": event.collapsed,
        "data": event.data,
    }


def _body(body: bytes, limit: int | None) -> dict[str, Any]:
    shown = body if limit is None else body[:limit]
    try:
        return {"body": shown.decode("utf-8"), "body_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(shown).decode("ascii"), "body_encoding": "base64"}


def request_view(request: InboundRequest, *, body_limit: int | None = 2048) -> dict[str, Any]:
    return {
        "id": request.id,
        "received_at": iso(request.received_at),
        "kind": request.kind,
        "source": request.source,
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        "remote_addr": request.remote_addr,
        "status": request.status,
        "http_status": request.http_status,
        "reason": request.reason,
        "verification": request.verification,
        "event_count": request.event_count,
        "body_size": request.body_size,
        "body_truncated": request.body_truncated,
        **_body(request.body, body_limit),
    }


def state_of(
    channel: ManagedChannel, connection_status: ConnectionStatus | None, now: datetime
) -> ChannelState:
    if channel.status is ChannelStatus.DISABLED:
        return ChannelState.DISABLED
    if connection_status is not ConnectionStatus.ACTIVE:
        return ChannelState.PAUSED
    if channel.expires_at is not None and channel.expires_at <= now:
        return ChannelState.EXPIRED
    return ChannelState.FAILING if channel.failures else ChannelState.LIVE


def managed_view(
    channel: ManagedChannel, connection_status: ConnectionStatus | None, now: datetime
) -> dict[str, Any]:
    left = (channel.expires_at - now).total_seconds() if channel.expires_at else None
    return {
        "channel_id": channel.channel_id,
        "connection": channel.connection,
        "source": channel.source,
        "events": list(channel.events),
        "notify_url": channel.notify_url,
        "options": channel.options,
        "state": state_of(channel, connection_status, now),
        "expires_at": iso(channel.expires_at),
        "expires_in_seconds": int(left) if left is not None else None,
        "last_renewed_at": iso(channel.last_renewed_at),
        "next_renewal_at": iso(channel.next_renewal_at),
        "renewals": channel.renewals,
        "failures": channel.failures,
        "last_error": channel.last_error,
        "tokens": [{"valid_until": iso(t.valid_until)} for t in channel.tokens],
    }


def gap_view(gap: Gap) -> dict[str, Any]:
    return {
        "channel_id": gap.channel_id,
        "from": iso(gap.gap_from),
        "to": iso(gap.gap_to),
        "reason": gap.reason,
        "events": list(gap.events),
    }


def connection_view(info: ConnectionInfo) -> dict[str, Any]:
    """The admin/CLI shape of a connection: never a secret."""
    return {
        "name": info.name,
        "dc": info.dc,
        "client_id": info.client_id,
        "organization_id": info.organization_id,
        "accounts_url": info.accounts_url or data_centre(info.dc).accounts_url,
        "api_domain": info.api_domain or data_centre(info.dc).api_domain,
        "limits": info.limits,
        "status": info.status,
        "last_error": info.last_error,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }


def delivery_view(row: DeliveryInfo) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_seq": row.event_seq,
        "sink": row.sink,
        "record_key": row.record_key,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_error": row.last_error,
        "lease_owner": row.lease_owner,
        "delivered_at": iso(row.delivered_at),
        "created_at": iso(row.created_at),
        "replay": row.replay,
    }


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "at": iso(attempt.at),
        "outcome": attempt.outcome,
        "latency_ms": round(attempt.latency_ms, 1),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "response": attempt.response,
        "replica": attempt.replica,
    }


def delivery_detail_view(row: DeliveryInfo, attempts: list[Attempt]) -> dict[str, Any]:
    """One outbox row with its publish attempts, oldest first (admin API and CLI)."""
    return {**delivery_view(row), "attempts": [attempt_view(a) for a in attempts]}


def subscription_view(info: SubscriptionInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "filters": {"source": info.source, "module": info.module, "operation": info.operation},
        "acked_seq": info.acked_seq,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
    }


def status_view(status: Status) -> dict[str, Any]:
    return {
        "sinks": [
            {
                "name": s.name,
                "pending": s.pending,
                "dead": s.dead,
                "oldest_pending_age_seconds": s.oldest_pending_seconds,
                "replays_pending": s.replays_pending,
                "disabled": s.disabled,
                "disabled_reason": s.disabled_reason,
            }
            for s in status.sinks
        ],
        "events": {
            "count": status.events,
            "last_seq": status.last_seq,
            "last_received_at": iso(status.last_event_at),
        },
        "subscriptions": [
            {"name": name, "acked_seq": acked, "behind": max(0, (status.last_seq or 0) - acked)}
            for name, acked in status.subscriptions
        ],
        "problems": status.problems,
    }
