"""Prometheus metrics (the process-wide default registry; served at /metrics)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

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
ZOHO_CALLS = Counter(
    "bridge_zoho_calls_total",
    "Requests sent to Zoho (retries included), by product (crm, books, accounts), purpose "
    '(renewal, token, check, reconcile) and HTTP status (or "error" when none came back).',
    ["product", "purpose", "status"],
)
CHANNELS_AT_RISK = Gauge(
    "bridge_channels_at_risk",
    "Managed channels expiring within BRIDGE_CHANNEL_ALERT_HOURS, or paused.",
)


INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class WebhookStats(Collector):
    """Webhook deliveries by kind and outcome, new events, and answer times: plain numbers
    updated on the event loop, turned into Prometheus samples when /metrics is read.

    Every delivery updates all three, and prometheus_client's Counter and Histogram take a
    lock per update (about 1.2 µs a delivery, against 0.3 here). Only the event-loop thread
    updates or reads these.
    """

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str], int] = {}
        self._events: dict[tuple[str, str], int] = {}  # (product, origin)
        self._buckets: dict[str, list[int]] = {}  # per kind: one count per bucket, then +Inf
        self._sums: dict[str, float] = {}

    def record(self, kind: str, outcome: str, seconds: float, events: int = 0) -> None:
        key = (kind, outcome)
        self._requests[key] = self._requests.get(key, 0) + 1
        if events:
            self.events_stored(kind, "webhook", events)
        counts = self._buckets.get(kind)
        if counts is None:
            counts = self._buckets[kind] = [0] * (len(INGEST_BUCKETS) + 1)
            self._sums[kind] = 0.0
        counts[bisect.bisect_left(INGEST_BUCKETS, seconds)] += 1  # buckets are "≤ bound"
        self._sums[kind] += seconds

    def events_stored(self, product: str, origin: str, count: int) -> None:
        key = (product, origin)
        self._events[key] = self._events.get(key, 0) + count

    def collect(self) -> Iterator[Metric]:
        yield _counter(
            "bridge_webhook_requests",
            "Webhook deliveries received, by kind (books, crm) and outcome.",
            ["kind", "outcome"],
            self._requests,
        )
        yield _counter(
            "bridge_events_stored",
            "New events stored, by product and origin.",
            ["product", "origin"],
            self._events,
        )
        seconds = HistogramMetricFamily(
            "bridge_ingest_seconds",
            "Time from reading a webhook to answering it, by kind.",
            labels=["kind"],
        )
        bounds = [*(repr(float(b)) for b in INGEST_BUCKETS), "+Inf"]  # as prometheus_client
        for kind, counts in sorted(self._buckets.items()):
            seconds.add_metric(
                [kind], list(zip(bounds, itertools.accumulate(counts), strict=True)),
                sum_value=self._sums[kind],
            )  # fmt: skip
        yield seconds


def _counter(
    name: str, documentation: str, labels: list[str], counts: dict[tuple[str, str], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in sorted(counts.items()):
        family.add_metric(list(values), count)
    return family


WEBHOOKS = WebhookStats()
REGISTRY.register(WEBHOOKS)


DELIVERIES = Counter(
    "bridge_deliveries_total",
    "Outbox publish attempts by sink and outcome (delivered, retry, dead, unavailable: the "
    "sink could not be reached and the row waits, its retry budget untouched).",
    ["sink", "outcome"],
)
PUBLISH_SECONDS = Histogram(
    "bridge_publish_seconds",
    "Time for one sink publish (broker confirm or subscriber answer), by sink.",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)

RECONCILE_MISSED = Counter(
    "bridge_reconcile_missed",
    "Changes no webhook announced, emitted by reconciliation, by cause: missed (a healthy "
    "subscribed channel or rule should have sent it: alert on this one), gap, "
    "not_subscribed, delivery_failed.",
    ["connection", "module", "cause"],
)
RECONCILE_RUNS = Counter(
    "bridge_reconcile_runs",
    "Reconciliation runs by outcome: ok, failed, deferred (budget), paused (connection "
    "needs reauth), skipped (another replica holds the watch).",
    ["outcome"],
)
RECONCILE_LAG = Gauge(
    "bridge_reconcile_lag_seconds",
    "How far behind Zoho's clock a watch's cursor is (Zoho's Date minus the watermark).",
    ["connection", "module"],
)

UNEXPECTED_ERRORS = Counter(
    "bridge_unexpected_errors",
    "Requests answered 500 by an unexpected error (a bug: see the log line with the same "
    "request id), by area (hooks, admin, v1, other) and exception type.",
    ["area", "error_type"],
)

LONG_POLLS = Gauge(
    "bridge_long_polls",
    "Pull-subscription reads waiting for events now (long-polls held by this process).",
)
LONG_POLLS_REFUSED = Counter(
    "bridge_long_polls_refused",
    "Long-polls answered 429 at once because BRIDGE_LONG_POLLS_PER_SUBSCRIPTION or "
    "BRIDGE_LONG_POLLS_TOTAL waiting reads were already held (nothing was new).",
)

SINK_PUBLISH_RATE = Gauge(
    "bridge_sink_publish_rate",
    "Events per second this process's relay published to a push sink (confirmed by it), "
    "averaged over the last minute; across replicas, use "
    'rate(bridge_deliveries_total{outcome="delivered"}[1m]).',
    ["sink"],
)
OUTBOX_PENDING = Gauge(
    "bridge_outbox_pending",
    "Deliveries waiting in the outbox for a push sink (the backlog: due, leased or waiting "
    "to retry), read from the database when /metrics is scraped.",
    ["sink"],
)
OUTBOX_OLDEST_PENDING = Gauge(
    "bridge_outbox_oldest_pending_seconds",
    "Age of the oldest delivery still pending for a push sink (0 when none): a figure "
    "that keeps growing means the sink does not keep up, or a record is stuck retrying.",
    ["sink"],
)
OUTBOX_DEAD = Gauge(
    "bridge_outbox_dead",
    "Dead deliveries of a push sink (retries spent, or refused for good): they wait for "
    "`zoho-bridge outbox retry`.",
    ["sink"],
)
SINK_UP = Gauge(
    "bridge_sink_up",
    "1 while this process's relay can reach a push sink, 0 while the sink is paused as "
    "unreachable (its deliveries wait in the outbox and are probed for).",
    ["sink"],
)
DATABASE_UP = Gauge(
    "bridge_database_up",
    "1 when the last check could write to the database, 0 when it could not (unreachable "
    "or full: webhooks are answered 503 and readiness fails).",
)
CONNECTION_NEEDS_REAUTH = Gauge(
    "bridge_connection_needs_reauth",
    "1 for a Zoho connection whose refresh token Zoho refused (status needs_reauth: its "
    "channels are paused and it is not reconciled until a new refresh token is set).",
    ["connection"],
)

# What a relay exports (`serve`'s relay process hands these to `serve`'s /metrics).
RELAY_METRICS: tuple[Collector, ...] = (DELIVERIES, PUBLISH_SECONDS, SINK_PUBLISH_RATE, SINK_UP)


def relay_registry() -> CollectorRegistry:
    """A registry of the relay's metrics alone, for `serve` to append to its own."""
    registry = CollectorRegistry(auto_describe=True)
    for metric in RELAY_METRICS:
        registry.register(metric)
    return registry


_relay_metrics_here = [True]  # whether REGISTRY holds RELAY_METRICS


def leave_relay_metrics(to_child: bool) -> None:
    """Take the relay's metrics out of this process's /metrics while a child process
    relays and exports them (`to_child`), or put them back (idempotent both ways)."""
    if _relay_metrics_here[0] != to_child:
        return
    for metric in RELAY_METRICS:
        (REGISTRY.unregister if to_child else REGISTRY.register)(metric)
    _relay_metrics_here[0] = not to_child
