"""Prometheus metrics (the process-wide default registry; served at /metrics)."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_REQUESTS = Counter(
    "bridge_webhook_requests_total",
    "Webhook deliveries received, by kind (books, crm) and outcome.",
    ["kind", "outcome"],
)
EVENTS_STORED = Counter(
    "bridge_events_stored_total",
    "New events stored, by product and origin.",
    ["product", "origin"],
)
INGEST_SECONDS = Histogram(
    "bridge_ingest_seconds",
    "Time from reading a webhook to answering it, by kind.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WRITE_BATCH_SIZE = Histogram(
    "bridge_write_batch_size",
    "Deliveries committed together in one transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
CHANNEL_RENEWALS = Counter(
    "bridge_channel_renewals_total",
    "Managed CRM channel enables at Zoho, by reason (create, renew, repair) and outcome.",
    ["reason", "outcome"],
)
CHANNEL_GAPS = Counter(
    "bridge_channel_gaps_total",
    "Spans in which a managed channel was found not live at Zoho (recorded for reconciliation).",
)
CHANNELS_AT_RISK = Gauge(
    "bridge_channels_at_risk",
    "Managed channels expiring within BRIDGE_CHANNEL_ALERT_HOURS, or paused.",
)


# `.labels()` costs a lock and a dict lookup each time; the hot path keeps the children.
@functools.cache
def webhook_counter(kind: str, outcome: str) -> Any:
    return WEBHOOK_REQUESTS.labels(kind, outcome)


@functools.cache
def events_counter(product: str, origin: str) -> Any:
    return EVENTS_STORED.labels(product, origin)


@functools.cache
def ingest_timer(kind: str) -> Any:
    return INGEST_SECONDS.labels(kind)


DELIVERIES = Counter(
    "bridge_deliveries_total",
    "Outbox publish attempts by sink and outcome (delivered, retry, dead).",
    ["sink", "outcome"],
)
PUBLISH_SECONDS = Histogram(
    "bridge_publish_seconds",
    "Time for one sink publish (broker confirm or subscriber answer), by sink.",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
