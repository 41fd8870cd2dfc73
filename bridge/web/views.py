"""JSON shapes of stored objects, as the admin API shows them (never a secret)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from bridge.domain.events import StoredEvent
from bridge.domain.requests import InboundRequest
from bridge.store.channels import ChannelInfo
from bridge.store.sources import SourceInfo


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
