"""Pure token rules: parsing Zoho's answer and the 10-per-10-minutes arithmetic."""

from __future__ import annotations

import pytest

from bridge.zoho.errors import ZohoAuthError, ZohoTransientError
from bridge.zoho.tokens import StoredToken, parse_token_response, throttle_wait


def test_legacy_expires_in_sec_wins_over_milliseconds() -> None:
    body = {"access_token": "a", "expires_in": 3_600_000, "expires_in_sec": 3600}
    assert parse_token_response(200, body, 100.0, ()).expires_at == 3700.0


def test_http_200_without_access_token_is_permanent() -> None:
    with pytest.raises(ZohoAuthError):
        parse_token_response(200, {"error": "invalid_code"}, 0.0, ())
    with pytest.raises(ZohoAuthError):
        parse_token_response(200, {}, 0.0, ())


def test_server_errors_and_non_json_are_transient() -> None:
    with pytest.raises(ZohoTransientError):
        parse_token_response(502, {"access_token": "x"}, 0.0, ())
    with pytest.raises(ZohoTransientError):
        parse_token_response(200, None, 0.0, ())


def test_throttle_wait_counts_a_sliding_ten_minutes() -> None:
    times = tuple(float(t) for t in range(0, 100, 10))  # ten requests at 0..90 s
    assert throttle_wait(times[:9], 95.0) == 0.0
    assert throttle_wait(times, 95.0) == pytest.approx(505.0)  # first leaves at 600 s
    assert throttle_wait(times, 600.0) == 0.0


def test_usable_respects_the_margin() -> None:
    token = StoredToken("a", None, expires_at=1000.0)
    assert token.usable(600.0, 300.0)
    assert not token.usable(701.0, 300.0)
    assert not StoredToken().usable(0.0, 0.0)
