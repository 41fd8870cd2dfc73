"""The publish rate per sink: in `/admin/status` (events/s over the last minute) and as
`bridge_sink_publish_rate` in the metrics, beside the backlog and the oldest pending age."""

from __future__ import annotations

import asyncio

from bridge.services.relay import RecentRate

from .conftest import BridgeFactory, Recorder, webhook_config


def test_recent_rate_counts_the_last_minute_only() -> None:
    rate = RecentRate(window=60)
    rate.add(30, now=1000.2)
    rate.add(30, now=1000.9)
    rate.add(60, now=1030.0)
    assert rate.per_second(1030.5) == 2.0
    assert rate.per_second(1060.0) == 1.0  # the second 1000 has left the window
    assert rate.per_second(1090.0) == 0.0


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def test_status_and_metrics_show_the_publish_rate(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    async with bridge(webhook_config(recorder.url)) as b:
        [sink] = (await b.status())["sinks"]
        assert (sink["publish_rate_per_second"], sink["pending"]) == (0.0, 0)
        await b.post_crm(*[str(n) for n in range(6)])
        for _ in range(500):
            [sink] = (await b.status())["sinks"]
            metrics = (await b.client.get("/metrics")).text
            gauge = _metric(metrics, 'bridge_sink_publish_rate{sink="webhook"}')
            if (sink["publish_rate_per_second"], sink["pending"], gauge) == (0.1, 0, 0.1):
                break
            await asyncio.sleep(0.01)
        assert (sink["publish_rate_per_second"], sink["pending"]) == (0.1, 0)
        assert gauge == 0.1
        assert sink["oldest_pending_age_seconds"] is None


async def test_metrics_show_each_sinks_backlog_oldest_age_and_dead_letters(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail = {"0": 400, "1": 503}  # refused for good (dead), refused for now (retry)
    async with bridge(webhook_config(recorder.url)) as b:
        metrics = (await b.client.get("/metrics")).text
        assert _metric(metrics, 'bridge_outbox_pending{sink="webhook"}') == 0
        assert _metric(metrics, 'bridge_outbox_oldest_pending_seconds{sink="webhook"}') == 0
        await b.post_crm("0", "1", "2")
        for _ in range(500):
            metrics = (await b.client.get("/metrics")).text
            figures = (
                _metric(metrics, 'bridge_outbox_pending{sink="webhook"}'),
                _metric(metrics, 'bridge_outbox_dead{sink="webhook"}'),
            )
            if figures == (1, 1) and len(recorder.envelopes) == 1:
                break
            await asyncio.sleep(0.01)
        assert figures == (1, 1)  # "1" waits to retry, "0" is dead, "2" was delivered
        [sink] = (await b.status())["sinks"]
        age = _metric(metrics, 'bridge_outbox_oldest_pending_seconds{sink="webhook"}')
        assert age is not None and age > 0
        assert (sink["pending"], sink["dead"]) == (1, 1)
