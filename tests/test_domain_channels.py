"""Pure channel rules: expiry, renewal timing, retry, risk, diffing Zoho's list, gaps."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.channel_rules import (
    RenewalPolicy,
    Wanted,
    at_risk,
    channel_expiry,
    check_events,
    diagnose,
    gap_start,
    merge_listing,
    next_renewal,
    parse_expiry,
    retry_after_failure,
)
from bridge.zoho.watch import format_expiry

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
POLICY = RenewalPolicy()


def test_expiry_is_whole_seconds_with_an_offset_within_a_week() -> None:
    expiry = channel_expiry(NOW, POLICY)
    assert expiry == datetime(2026, 3, 8, 11, 0, 0, tzinfo=UTC)
    assert format_expiry(expiry) == "2026-03-08T11:00:00+00:00"
    assert channel_expiry(NOW, RenewalPolicy(lifetime=timedelta(days=7))) - NOW.replace(
        microsecond=0
    ) == timedelta(days=7)
    with pytest.raises(ValueError, match="7 days"):
        RenewalPolicy(lifetime=timedelta(days=8))


def test_renewal_after_a_day_or_halfway_to_a_short_expiry() -> None:
    assert next_renewal(NOW, NOW + timedelta(days=7), POLICY) == NOW + timedelta(hours=24)
    assert next_renewal(NOW, NOW + timedelta(hours=1), POLICY) == NOW + timedelta(minutes=30)


def test_retry_backs_off_and_never_passes_the_expiry() -> None:
    rng = random.Random(1)
    delays = [retry_after_failure(n, NOW, None, POLICY, rng) - NOW for n in (1, 2, 3, 10, 30)]
    assert timedelta(seconds=30) <= delays[0] <= timedelta(minutes=1)
    assert delays[1] <= timedelta(minutes=2)
    assert all(d <= timedelta(hours=1) for d in delays)
    soon = retry_after_failure(30, NOW, NOW + timedelta(minutes=10), POLICY, rng)
    assert soon <= NOW + timedelta(minutes=5)


def test_at_risk_within_the_alert_window() -> None:
    assert at_risk(None, NOW, POLICY)
    assert at_risk(NOW + timedelta(hours=23), NOW, POLICY)
    assert not at_risk(NOW + timedelta(hours=25), NOW, POLICY)


def test_event_names() -> None:
    assert check_events(["Leads.all", "Deals.edit", "Sales_Orders.create"]) == []
    assert check_events(["Leads", "Deals.update"]) == ["Leads", "Deals.update"]


WANTED = Wanted("42", ("Leads.all",), "https://b/hooks/crm", "tok", NOW + timedelta(days=6))


def listed(**changes: object) -> dict[str, object]:
    item: dict[str, object] = {
        "channel_id": "42",
        "events": ["Leads.all"],
        "notify_url": "https://b/hooks/crm",
        "token": "tok",
        "channel_expiry": "2026-03-07T12:00:00+00:00",
    }
    item.update(changes)
    return item


def test_diagnose_finds_each_difference() -> None:
    assert diagnose(WANTED, listed(), NOW) is None
    assert diagnose(WANTED, None, NOW) == "missing at Zoho"
    assert diagnose(WANTED, None, NOW + timedelta(days=7)) == "expired"
    assert diagnose(WANTED, listed(channel_expiry="2026-03-01T11:00:00+00:00"), NOW) == "expired"
    assert diagnose(WANTED, listed(events=["Leads.edit"]), NOW) == "events differ"
    assert diagnose(WANTED, listed(notify_url="https://x"), NOW) == "notify URL differs"
    assert diagnose(WANTED, listed(token="other"), NOW) == "token differs"
    assert diagnose(WANTED, listed(token=None), NOW) is None  # not shown: not judged


def test_parse_expiry_offsets_and_junk() -> None:
    assert parse_expiry("2023-08-02T16:59:50-11:00") == datetime(2023, 8, 3, 3, 59, 50, tzinfo=UTC)
    assert parse_expiry("junk") is None
    assert parse_expiry(None) is None


def test_gap_starts_at_last_confirmation_or_expiry() -> None:
    created = NOW - timedelta(days=3)
    assert gap_start(None, None, created) == created
    assert gap_start(NOW, NOW + timedelta(days=1), created) == NOW
    assert gap_start(NOW, NOW - timedelta(hours=2), created) == NOW - timedelta(hours=2)


def test_a_channel_listed_once_per_module_is_one_channel() -> None:
    listing = [
        {"channel_id": "42", "events": ["Leads.all"], "resource_name": "Leads", "token": "tok"},
        {"channel_id": "42", "events": ["Deals.edit"], "resource_name": "Deals", "token": "tok"},
        {"channel_id": 7, "events": ["Leads.all"]},
    ]
    merged = merge_listing(listing)
    assert set(merged) == {"42", "7"}
    assert merged["42"]["events"] == ["Leads.all", "Deals.edit"]
    wanted = Wanted("42", ("Deals.edit", "Leads.all"), "u", "tok", None)
    assert diagnose(wanted, {**merged["42"], "notify_url": "u"}, NOW) is None
