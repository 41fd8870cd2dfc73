"""Pure rules under the reconciliation calls: times, headers, page tokens, query builders,
budget shares and the call meter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.zoho.books import strategy_params
from bridge.zoho.connection import Limits
from bridge.zoho.coql import CoqlKey, keyset_query
from bridge.zoho.crm_records import version_params
from bridge.zoho.meter import CallMeter
from bridge.zoho.paging import is_stale_page_token
from bridge.zoho.ratelimit import UNKNOWN_RESET, parse_books_rate_limit
from bridge.zoho.shares import Shares
from bridge.zoho.times import iso_seconds, parse_http_date, parse_zoho_time

T = datetime(2025, 4, 9, 15, 25, 54, tzinfo=UTC)


def test_http_dates_parse_to_aware_utc_or_none() -> None:
    assert parse_http_date("Wed, 09 Apr 2025 15:25:54 GMT") == T
    assert parse_http_date("Wed, 09 Apr 2025 17:25:54 +0200") == T
    assert parse_http_date("Wed, 09 Apr 2025 15:25:54 -0000") == T
    assert [parse_http_date(v) for v in (None, "", "yesterday", "Wed, 99 Foo")] == [None] * 4


def test_zoho_times_and_iso_seconds() -> None:
    assert parse_zoho_time("2025-04-09T11:25:54-0400") == T
    assert parse_zoho_time("2025-04-09T20:55:54+05:30") == T
    assert parse_zoho_time("2025-04-09T15:25:54") == T  # no offset: UTC
    assert [parse_zoho_time(v) for v in (None, "", 5, "soon")] == [None] * 4
    assert iso_seconds(T.replace(microsecond=999)) == "2025-04-09T15:25:54+00:00"
    assert iso_seconds(datetime(2025, 1, 1)) == "2025-01-01T00:00:00+00:00"


def test_rate_limit_headers_and_the_reconcile_wait() -> None:
    headers = {
        "x-rate-limit-limit": "7500",
        "x-rate-limit-remaining": "40",
        "x-rate-limit-reset": "34881",
    }
    limit = parse_books_rate_limit(headers, seen_at=1000.0)
    assert limit is not None
    assert (limit.limit, limit.remaining, limit.reset_seconds) == (7500, 40, 34881.0)
    assert limit.wait(now=1001.0, headroom=50) == pytest.approx(34880.0)
    assert limit.wait(now=1001.0, headroom=39) == 0.0
    no_reset = parse_books_rate_limit({"x-rate-limit-remaining": "0"}, seen_at=0.0)
    assert no_reset is not None
    assert no_reset.wait(now=10.0, headroom=0) == UNKNOWN_RESET - 10.0
    assert parse_books_rate_limit({}, 0.0) is None
    assert parse_books_rate_limit({"x-rate-limit-remaining": "lots"}, 0.0) is None


def test_stale_page_token_answers() -> None:
    assert is_stale_page_token(
        400, {"code": "EXPIRED_VALUE", "details": {"api_name": "page_token"}}
    )
    assert is_stale_page_token(400, {"code": "TOKEN_BOUND_DATA_MISMATCH"})
    assert is_stale_page_token(
        400, {"code": "INVALID_DATA", "details": {"param_name": "page_token"}}
    )
    assert not is_stale_page_token(
        400, {"code": "INVALID_DATA", "details": {"param_name": "fields"}}
    )
    assert not is_stale_page_token(401, {"code": "EXPIRED_VALUE"})
    assert not is_stale_page_token(400, None)


def test_version_walk_query() -> None:
    assert version_params("Deals") == {
        "fields": "id,Modified_Time,Created_Time",
        "sort_by": "Modified_Time",
        "sort_order": "desc",
        "per_page": "200",
    }
    assert version_params("Leads")["converted"] == "both"  # converted is not deleted
    with pytest.raises(ValueError):
        version_params("Deals", [])


def test_books_strategy_params() -> None:
    naive_utc = datetime(2025, 4, 9, 11, 25, 54, 7, tzinfo=timezone(timedelta(hours=-4)))
    assert strategy_params("filter", naive_utc) == {"last_modified_time": "2025-04-09T15:25:54"}
    assert strategy_params("sorted", None) == {
        "sort_column": "last_modified_time",
        "sort_order": "D",
    }
    assert strategy_params("scan", T) == {}
    with pytest.raises(ValueError):
        strategy_params("filter", None)


def test_keyset_queries() -> None:
    first = keyset_query("Leads", since=T)
    assert first == (
        "select id, Modified_Time, Created_Time from Leads where "
        "Modified_Time >= '2025-04-09T15:25:54+00:00' order by Modified_Time asc, id asc limit 2000"
    )
    after = CoqlKey(T, "5725767000003000064")
    assert keyset_query("Leads", after=after, limit=200) == (
        "select id, Modified_Time, Created_Time from Leads where "
        "(Modified_Time > '2025-04-09T15:25:54+00:00') or "
        "(Modified_Time = '2025-04-09T15:25:54+00:00' and id > 5725767000003000064) "
        "order by Modified_Time asc, id asc limit 200"
    )
    bounded = keyset_query("Leads", after=after, until=T + timedelta(hours=1))
    assert bounded.endswith(
        "and Modified_Time <= '2025-04-09T16:25:54+00:00' order by Modified_Time asc, id asc limit 2000"
    )
    assert bounded.count("(") == 3
    for bad in (
        {"since": None},
        {"since": T, "limit": 2001},
        {"after": CoqlKey(T, "1 or 1=1")},
    ):
        with pytest.raises(ValueError):
            keyset_query("Leads", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        keyset_query("Leads; drop", since=T)
    assert CoqlKey.of({"id": "12", "Modified_Time": "2025-04-09T20:55:54+05:30"}) == CoqlKey(
        T, "12"
    )
    assert CoqlKey.of({"id": "12"}) is None


def test_shares_of_each_budget() -> None:
    limits = Limits(
        books_per_minute=60, books_daily=1000, crm_concurrency=5, crm_daily_credits=2500
    )
    shares = Shares()
    assert (shares.books_per_minute(limits), shares.books_daily(limits)) == (12, 100)
    assert (shares.crm_concurrency(limits), shares.crm_daily_credits(limits)) == (1, 250)
    tiny = Limits(books_per_minute=1, books_daily=1, crm_concurrency=1, crm_daily_credits=1)
    assert shares.crm_concurrency(tiny) == shares.books_per_minute(tiny) == 1  # never zero
    for bad in ({"per_minute": 0}, {"daily": 1.5}, {"books_headroom": -1}):
        with pytest.raises(ValueError):
            Shares(**bad)  # type: ignore[arg-type]


def test_call_meter_counts_by_product() -> None:
    meter = CallMeter()
    meter.count("crm", 3)
    meter.count("crm", 1)
    meter.count("books", 1)
    assert meter == CallMeter(calls=3, crm_credits=4, books_calls=1)
