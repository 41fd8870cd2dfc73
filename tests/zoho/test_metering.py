"""Every request sent is counted: per caller in a CallMeter, and process-wide in
`bridge_zoho_calls_total{product,purpose,status}`; 429s back off with jitter."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bridge.zoho.meter import CallMeter
from bridge.zoho.retry import RetryPolicy

from .conftest import Rig, connect


def _calls(product: str, purpose: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "bridge_zoho_calls_total", {"product": product, "purpose": purpose, "status": status}
    )
    return value or 0.0


async def test_429s_are_retried_with_jitter_and_counted(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    before = {s: _calls("crm", "reconcile", s) for s in ("429", "204")}
    tokens_before = _calls("accounts", "token", "200")
    state.throttle(2)
    meter = CallMeter()
    pages = [p async for p in rig.client.crm_versions(connection, "Deals", meter=meter)]
    assert [p.status for p in pages] == [204]
    assert (meter.calls, meter.crm_credits, meter.books_calls) == (3, 3, 0)
    assert _calls("crm", "reconcile", "429") - before["429"] == 2
    assert _calls("crm", "reconcile", "204") - before["204"] == 1
    assert _calls("accounts", "token", "200") - tokens_before == 1
    # Zoho sends no Retry-After (zoho.md §6): our own backoff, jittered inside its band.
    policy = RetryPolicy()
    assert len(rig.slept) == 2
    assert policy.base_delay / 2 <= rig.slept[0] <= policy.base_delay
    assert policy.base_delay <= rig.slept[1] <= 2 * policy.base_delay


async def test_books_calls_are_metered_and_labelled_by_purpose(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    before = _calls("books", "check", "200")
    meter = CallMeter()
    state.books_create("invoices", {})
    async for _page in rig.client.books_pages(connection, "invoices", "scan", meter=meter):
        pass
    await rig.client.check(connection, crm=False)
    assert (meter.calls, meter.books_calls, meter.crm_credits) == (1, 1, 0)
    assert _calls("books", "check", "200") - before == 1
