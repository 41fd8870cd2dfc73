"""The hot-path webhook metrics: Prometheus samples built from plain numbers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import WebhookStats


def _samples(stats: WebhookStats) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(stats)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_buckets_are_less_or_equal_and_cumulative_counts_and_sums_add_up() -> None:
    stats = WebhookStats()
    stats.record("books", "accepted", 0.001, events=1)  # on a bound: that bucket (le)
    stats.record("books", "accepted", 0.003, events=2)
    stats.record("books", "rejected", 3.0)  # past the last bound: +Inf only
    stats.record("crm", "duplicate", 0.0004)
    samples = _samples(stats)

    def bucket(kind: str, le: str) -> float:
        return samples[("bridge_ingest_seconds_bucket", (("kind", kind), ("le", le)))]

    assert [bucket("books", le) for le in ("0.001", "0.0025", "0.005", "2.5", "+Inf")] == [
        1, 1, 2, 2, 3
    ]  # fmt: skip
    assert bucket("crm", "0.001") == 1
    assert samples[("bridge_ingest_seconds_count", (("kind", "books"),))] == 3
    assert abs(samples[("bridge_ingest_seconds_sum", (("kind", "books"),))] - 3.004) < 1e-9
    requests = "bridge_webhook_requests_total"
    assert samples[(requests, (("kind", "books"), ("outcome", "accepted")))] == 2
    assert samples[(requests, (("kind", "books"), ("outcome", "rejected")))] == 1
    assert samples[(requests, (("kind", "crm"), ("outcome", "duplicate")))] == 1
    events = ("bridge_events_stored_total", (("origin", "webhook"), ("product", "books")))
    assert samples[events] == 3
    assert (
        "bridge_events_stored_total",
        (("origin", "webhook"), ("product", "crm")),
    ) not in samples


def test_nothing_recorded_still_describes_the_metrics() -> None:
    registry = CollectorRegistry()
    registry.register(WebhookStats())
    text = generate_latest(registry).decode()
    for name in ("bridge_webhook_requests", "bridge_events_stored", "bridge_ingest_seconds"):
        assert f"# TYPE {name}" in text
