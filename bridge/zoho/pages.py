"""What one page of a Zoho list answer carries for reconciliation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.zoho.ratelimit import BooksRateLimit


@dataclass(frozen=True, slots=True)
class CrmPage:
    """One CRM list answer: its rows (empty on 204/304), HTTP status, and Zoho's `Date`
    header (None if absent or unparseable), by which the poller advances its cursor.

    `restarted` marks the first page after Zoho refused a stale page token and the walk
    began again at page 1: the caller will see rows it already saw.
    """

    rows: list[dict[str, Any]]
    status: int
    server_time: datetime | None
    more_records: bool = False
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class BooksPage:
    """One Books list answer: rows (possibly with duplicates: reconciliation.md B6), the
    page number, whether another follows, Zoho's `Date`, and the daily quota headers."""

    rows: list[dict[str, Any]]
    status: int
    server_time: datetime | None
    page: int
    has_more: bool
    rate_limit: BooksRateLimit | None = None


@dataclass(frozen=True, slots=True)
class CoqlPage:
    """The rows of one COQL answer and whether more match beyond its LIMIT."""

    rows: list[dict[str, Any]]
    more_records: bool
    status: int = 200
    server_time: datetime | None = None
