"""Pure rules: data centres, credit costs, paging cursors, watch bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.errors import ConfigurationError
from bridge.zoho.budget import coql_credits
from bridge.zoho.connection import Connection
from bridge.zoho.datacentres import DATA_CENTRES, data_centre
from bridge.zoho.errors import ZohoApiError, ZohoPartialFailure
from bridge.zoho.paging import CrmCursor, next_crm_cursor
from bridge.zoho.watch import WatchSpec, format_expiry, watch_item, watch_results


def test_every_data_centre_has_its_own_hosts() -> None:
    assert set(DATA_CENTRES) == {"com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa", "uk"}
    assert data_centre("eu").accounts_url == "https://accounts.zoho.eu"
    assert data_centre("eu").api_domain == "https://www.zohoapis.eu"
    assert data_centre("ca").accounts_url == "https://accounts.zohocloud.ca"
    assert not data_centre("uk").confirmed
    with pytest.raises(ConfigurationError):
        data_centre("mars")


def test_connection_overrides_win_and_secrets_do_not_print() -> None:
    plain = Connection("a", "in", "id", "very-secret", "refresh-secret")
    assert plain.accounts_base == "https://accounts.zoho.in"
    moved = Connection("a", "in", "id", "s", "r", accounts_url="http://x/", api_domain="http://y/")
    assert (moved.accounts_base, moved.default_api_domain) == ("http://x", "http://y")
    assert "secret" not in repr(plain)


def test_coql_credit_table() -> None:
    assert [coql_credits(n) for n in (1, 200, 201, 1000, 1001, 2000)] == [1, 1, 2, 2, 3, 3]


def test_crm_cursor_switches_to_page_token_after_2000() -> None:
    more = {"more_records": True, "next_page_token": "tok"}
    assert next_crm_cursor(CrmCursor(9), more, 200) == CrmCursor(10)
    assert next_crm_cursor(CrmCursor(10), more, 200) == CrmCursor(11, "tok")
    assert next_crm_cursor(CrmCursor(11, "a"), more, 200) == CrmCursor(12, "tok")
    assert next_crm_cursor(CrmCursor(3), {"more_records": False}, 200) is None
    with pytest.raises(ZohoApiError):
        next_crm_cursor(CrmCursor(10), {"more_records": True}, 200)


def test_expiry_is_sent_without_fractional_seconds() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-11)))
    assert format_expiry(when) == "2030-01-02T03:04:05-11:00"
    assert format_expiry(datetime(2030, 1, 1)) == "2030-01-01T00:00:00+00:00"


def test_watch_item_leaves_out_what_is_not_given() -> None:
    assert watch_item(WatchSpec("7", channel_expiry=datetime(2030, 1, 1, tzinfo=UTC))) == {
        "channel_id": "7",
        "channel_expiry": "2030-01-01T00:00:00+00:00",
    }


def test_watch_results_name_every_failed_item() -> None:
    body = {
        "watch": [
            {"code": "SUCCESS", "status": "success", "message": "ok", "details": {}},
            {"code": "INVALID_DATA", "status": "error", "message": "bad", "details": {"x": 1}},
            "garbage",
        ]
    }
    with pytest.raises(ZohoPartialFailure) as failure:
        watch_results(202, body)
    assert [(e.index, e.code) for e in failure.value.errors] == [
        (1, "INVALID_DATA"),
        (2, "UNKNOWN"),
    ]
    assert "item 1: INVALID_DATA bad" in str(failure.value)
    with pytest.raises(ZohoApiError):
        watch_results(500, {"code": "INTERNAL_SERVER_ERROR"})
    assert watch_results(200, {"watch": [body["watch"][0]]}) == [body["watch"][0]]
