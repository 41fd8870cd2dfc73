"""JSON shapes of deliveries, subscriptions and the status overview."""

from __future__ import annotations

from typing import Any

from bridge.services.delivery_admin import Status
from bridge.store.outbox_queries import DeliveryInfo
from bridge.store.subscriptions import SubscriptionInfo
from bridge.web.views import iso


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
