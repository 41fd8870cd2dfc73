"""Zoho's time formats and clock: pure formatting and parsing, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def iso_seconds(when: datetime) -> str:
    """ISO-8601 with an offset and no fraction, e.g. `2025-01-01T00:00:00+00:00`.

    The form `If-Modified-Since` takes (zoho.md §4.2) and COQL compares datetimes with
    (zoho.md §4.2 example); CRM times have one-second granularity (reconciliation.md C2),
    so a fraction would say more than Zoho can. Naive values are read as UTC.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.replace(microsecond=0).isoformat()


def books_time(when: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC, as Pipedream's invoice poller sends it (zoho.md §4.1,
    UNCERTAIN whether Books reads it as "at or after")."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.replace(microsecond=0).isoformat()


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header as an aware UTC datetime; None if absent or unparseable.

    The poller advances its cursor by Zoho's clock, read from this header, never by ours
    (reconciliation.md a.2 #5, e #2).
    """
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 5322 "-0000" parses naive; HTTP dates are always GMT.
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_zoho_time(value: object) -> datetime | None:
    """A CRM (`2025-04-09T11:25:54+05:30`) or Books (`2025-04-09T11:25:54-0400`, offset
    without a colon: reconciliation.md B5) timestamp as an aware datetime; None if it is
    not one. A value without an offset is read as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
