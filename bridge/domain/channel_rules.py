"""When to renew a managed CRM channel, what expiry to ask for, and how to tell that the
channel Zoho has is not the one we configured. Pure: time is passed in.

Facts (zoho.md §1.2): a channel lives at most one week, an expiry that is missing or beyond
a week gives one hour, fractional seconds have been refused, and "after this time,
notifications for the channel are not sent" — silently.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_LIFETIME = timedelta(days=7)
_EVENT = re.compile(r"^[A-Za-z0-9_]+\.(create|edit|delete|all)$")


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """How managed channels are kept alive.

    Renewing after a day of a ~7-day life leaves six days of slack: a bridge (or Zoho, or
    the customer's consent) can be broken for days before a channel lapses.
    """

    lifetime: timedelta = timedelta(hours=167)
    renew_after: timedelta = timedelta(hours=24)
    alert_within: timedelta = timedelta(hours=24)
    retry_base: timedelta = timedelta(minutes=1)
    retry_cap: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.lifetime <= MAX_LIFETIME:
            raise ValueError("a channel lifetime must be positive and at most 7 days")


def channel_expiry(now: datetime, policy: RenewalPolicy) -> datetime:
    """The expiry to ask for: whole seconds in UTC, never beyond Zoho's week (§1.2)."""
    when = now.astimezone(UTC).replace(microsecond=0) + policy.lifetime
    latest = now.astimezone(UTC).replace(microsecond=0) + MAX_LIFETIME
    return min(when, latest)


def next_renewal(renewed_at: datetime, expires_at: datetime, policy: RenewalPolicy) -> datetime:
    """When to renew next: after `renew_after`, but never later than halfway to expiry, so
    a short lifetime (or an expiry Zoho shortened) still leaves time to retry."""
    halfway: datetime = renewed_at + (expires_at - renewed_at) / 2
    soon: datetime = renewed_at + policy.renew_after
    return min(soon, halfway)


def retry_after_failure(
    failures: int, now: datetime, expires_at: datetime | None, policy: RenewalPolicy,
    rng: random.Random,
) -> datetime:  # fmt: skip
    """When to try again after `failures` failed renewals: exponential with jitter, capped,
    and never after the channel's expiry (a last attempt just before it)."""
    ceiling: timedelta = min(policy.retry_cap, policy.retry_base * (2 ** min(failures - 1, 20)))
    when: datetime = now + ceiling * (0.5 + rng.random() / 2)
    if expires_at is not None and expires_at > now:
        last: datetime = now + (expires_at - now) / 2
        when = min(when, last)
    return when


def at_risk(expires_at: datetime | None, now: datetime, policy: RenewalPolicy) -> bool:
    """Whether the channel expires within the alert window (or has no known expiry)."""
    return expires_at is None or expires_at - now <= policy.alert_within


def check_events(events: Sequence[str]) -> list[str]:
    """`Module.create|edit|delete|all` items (zoho.md §1.2); the bad ones, if any."""
    return [e for e in events if not _EVENT.match(e)]


@dataclass(frozen=True, slots=True)
class Wanted:
    """What we configured for a channel, as the comparison needs it."""

    channel_id: str
    events: tuple[str, ...]
    notify_url: str
    token: str
    expires_at: datetime | None


def parse_expiry(raw: Any) -> datetime | None:
    """Zoho's `channel_expiry` (ISO-8601 with an offset), or None if unreadable."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def merge_listing(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Zoho's GET list by channel id. Each entry names one `resource_name` (module), so a
    channel watching several modules may be listed once per module (UNCERTAIN, zoho.md
    §1.1): entries of one channel are merged, their events united, so a multi-module
    channel is not "repaired" on every comparison."""
    merged: dict[str, dict[str, Any]] = {}
    for item in items:
        channel_id = str(item.get("channel_id"))
        if channel_id not in merged:
            merged[channel_id] = dict(item)
            continue
        seen = merged[channel_id]
        events = [*(seen.get("events") or []), *(item.get("events") or [])]
        seen["events"] = list(dict.fromkeys(map(str, events)))
    return merged


def diagnose(wanted: Wanted, listed: Mapping[str, Any] | None, now: datetime) -> str | None:
    """Why the channel Zoho lists (None: not listed) is not the live channel we want, or
    None when it is. Whether Zoho lists expired channels is undocumented (§1.2), so both
    "not listed" and "listed but expired" mean re-enable."""
    if listed is None:
        if wanted.expires_at is not None and wanted.expires_at <= now:
            return "expired"
        return "missing at Zoho"
    expiry = parse_expiry(listed.get("channel_expiry"))
    if expiry is not None and expiry <= now:
        return "expired"
    events = listed.get("events")
    if isinstance(events, list) and sorted(map(str, events)) != sorted(wanted.events):
        return "events differ"
    url = listed.get("notify_url")
    if isinstance(url, str) and url != wanted.notify_url:
        return "notify URL differs"
    # The GET answer is documented to carry the token; if a tenant leaves it out we
    # cannot tell, and do not churn the channel over it.
    token = listed.get("token")
    if isinstance(token, str) and token != wanted.token:
        return "token differs"
    return None


def gap_start(
    verified_at: datetime | None, expires_at: datetime | None, created_at: datetime
) -> datetime:
    """Since when callbacks may be missing: the last moment Zoho confirmed the channel, or
    its expiry if that came first. Conservative: reconciliation polls the whole span."""
    start = verified_at or created_at
    if expires_at is not None and expires_at < start:
        return expires_at
    return start
