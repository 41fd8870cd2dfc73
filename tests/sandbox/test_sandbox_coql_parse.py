"""The sandbox's COQL subset, parsed without a server: limits and spellings (§4.2, C9)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.sandbox.coql_parse import CoqlError, parse
from bridge.sandbox.model import CrmRecord

T = datetime(2025, 1, 1, tzinfo=UTC)


def test_keyset_criteria_evaluate_as_written() -> None:
    query = parse(
        "SELECT id, Modified_Time FROM Leads WHERE ((Modified_Time > '2025-01-01T00:00:00+00:00') "
        "OR (Modified_Time = '2025-01-01T00:00:00+00:00' AND id > 10)) "
        "AND Modified_Time <= '2025-01-01T00:00:05+00:00' ORDER BY Modified_Time ASC, id ASC LIMIT 5"
    )
    assert (query.module, query.fields, query.limit, query.offset) == (
        "Leads",
        ["id", "Modified_Time"],
        5,
        0,
    )
    assert query.order == [("Modified_Time", False), ("id", False)]
    assert query.where is not None
    at = [CrmRecord(str(i), T, T, {}) for i in (9, 10, 11)]
    later = CrmRecord("1", T, T.replace(second=5), {})
    too_late = CrmRecord("2", T, T.replace(second=6), {})
    assert [query.where(r) for r in [*at, later, too_late]] == [False, False, True, True, False]


def test_limit_spellings_and_limits() -> None:
    assert (
        parse("select id from Leads limit 10, 500").offset,
        parse("select id from Leads limit 10, 500").limit,
    ) == (10, 500)
    assert parse("select id from Leads limit 7 offset 3").offset == 3
    assert parse("select id from Leads").limit == 200
    many = " and ".join(f"id > {i}" for i in range(26))
    for text, code in [
        (f"select id from Leads where {many}", "LIMIT_EXCEEDED"),
        ("select id from Leads order by " + ", ".join(["id"] * 11), "LIMIT_EXCEEDED"),
        ("select id from Leads limit 2001", "LIMIT_EXCEEDED"),
        ("select from Leads", "SYNTAX_ERROR"),
        ("select id from Leads where id > 'x'", "INVALID_QUERY"),
        ("select id from Leads where id >", "SYNTAX_ERROR"),
        ("select id from Leads limit 5 extra", "SYNTAX_ERROR"),
        ("select id from Leads where id ~ 5", "SYNTAX_ERROR"),
    ]:
        with pytest.raises(CoqlError) as error:
            parse(text)
        assert error.value.code == code, text
