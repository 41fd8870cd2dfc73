"""The CloudEvents envelope and routing subjects, on fixed inputs."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.domain.envelope import (
    build_envelope,
    envelope_bytes,
    envelope_head,
    format_time,
    message_for,
    subject_for,
    subject_token,
)
from bridge.domain.events import Operation, Origin, Product
from bridge.errors import ConfigurationError, InvalidInput

from .support import sample_event


def test_crm_envelope_is_the_product_md_example() -> None:
    assert build_envelope(sample_event(data={"...": "x"})) == {
        "specversion": "1.0",
        "id": "01JD3Q6W8M6V7J4K3Z5X2N1B0A",
        "source": "zoho-bridge/crm/acme-eu",
        "type": "com.zoho.crm.record.updated",
        "subject": "Leads/5725767000003000010",
        "time": "2024-06-11T14:25:53.625Z",
        "datacontenttype": "application/json",
        "zohomodule": "Leads",
        "zohooperation": "updated",
        "zohorecordid": "5725767000003000010",
        "zohoorigin": "webhook",
        "bridgeseq": 1042,
        "data": {"...": "x"},
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"product": Product.BOOKS, "source": "books-a", "module": "SalesOrder"},
        {"module": "Zählung", "product": Product.BOOKS, "operation": Operation.CHANGED},
        {"record_id": 'quote " back \\ slash / ctl \x01\x1f \u2028 tab\t 🙂'},
        {"module": 'Custom "Mod"', "origin": Origin.REPLAY},
        {
            "occurred_at": datetime(
                2024, 6, 11, 16, 25, 53, 999_999, tzinfo=timezone(timedelta(hours=2))
            )
        },
        {"data": [1, {"x": None}], "seq": 1},
    ],
)
def test_the_stored_head_begins_the_envelope_bytes(overrides: dict[str, object]) -> None:
    """What the writer stores (`events.envelope_head`) and reads complete with the seq and
    `data` is, byte for byte, the envelope every sink sends."""
    event = sample_event(**overrides)
    head = envelope_head(event)
    assert head is not None
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    assert (head + f'{event.seq},"data":{data}}}').encode() == envelope_bytes(event)


def test_a_reconciled_event_has_no_stored_head() -> None:
    """Its extra attributes follow the seq: its envelope is written field by field."""
    assert envelope_head(sample_event(origin=Origin.RECONCILIATION)) is None


@pytest.mark.parametrize(
    ("module", "operation", "expected"),
    [
        ("invoice", Operation.CREATED, "com.zoho.books.invoice.created"),
        ("SalesOrder", Operation.DELETED, "com.zoho.books.salesorder.deleted"),
        ("contact", Operation.CHANGED, "com.zoho.books.contact.changed"),
    ],
)
def test_books_type_uses_the_lowercased_entity(
    module: str, operation: Operation, expected: str
) -> None:
    event = sample_event(
        product=Product.BOOKS, source="acme-books", module=module, operation=operation
    )
    envelope = build_envelope(event)
    assert envelope["type"] == expected
    assert envelope["source"] == "zoho-bridge/books/acme-books"
    assert envelope["zohomodule"] == module


def test_crm_type_does_not_depend_on_the_module() -> None:
    event = sample_event(module="Deals", operation=Operation.DELETED, origin=Origin.REPLAY)
    envelope = build_envelope(event)
    assert envelope["type"] == "com.zoho.crm.record.deleted"
    assert envelope["zohoorigin"] == "replay"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Converted to UTC; sub-millisecond digits are cut, never rounded up.
        (datetime(2024, 6, 11, 16, 25, 53, 625999, tzinfo=timezone(timedelta(hours=2))),
         "2024-06-11T14:25:53.625Z"),
        (datetime(2024, 1, 1, tzinfo=UTC), "2024-01-01T00:00:00.000Z"),
        (datetime(2023, 12, 31, 20, 30, tzinfo=timezone(timedelta(hours=-5))),
         "2024-01-01T01:30:00.000Z"),
    ],
)  # fmt: skip
def test_time_is_rfc3339_utc_with_milliseconds(moment: datetime, expected: str) -> None:
    assert format_time(moment) == expected
    assert build_envelope(sample_event(occurred_at=moment))["time"] == expected


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        sample_event(occurred_at=datetime(2024, 6, 11, 14, 25, 53))


def test_envelope_bytes_are_compact_utf8_json_of_the_envelope() -> None:
    event = sample_event()
    raw = envelope_bytes(event)
    assert json.loads(raw) == build_envelope(event)
    assert b", " not in raw
    assert b": " not in raw
    assert "Müller".encode() in raw  # not \u00fc-escaped
    assert raw.startswith(b'{"specversion":"1.0","id":"01JD3Q6W8M6V7J4K3Z5X2N1B0A",')


def test_envelope_bytes_refuse_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        envelope_bytes(sample_event(data={"amount": math.nan}))


def test_subject_is_prefix_source_module_operation() -> None:
    assert subject_for(message_for(sample_event())) == "zoho.acme-eu.Leads.updated"
    assert (
        subject_for(message_for(sample_event()), "acme.zoho") == "acme.zoho.acme-eu.Leads.updated"
    )


@pytest.mark.parametrize(
    ("raw", "token"),
    [
        ("acme eu.1", "acme_eu_1"),
        ("Sales*Orders>", "Sales_Orders_"),
        ("a#b\tc", "a_b_c"),
        ("", "_"),
        ("Déals", "D_als"),
        ("ok_Name-1", "ok_Name-1"),
    ],
)
def test_subject_tokens_hold_no_separator_or_wildcard(raw: str, token: str) -> None:
    assert subject_token(raw) == token
    subject = subject_for(message_for(sample_event(source=raw, module=raw)))
    assert subject.count(".") == 3


@pytest.mark.parametrize("prefix", ["", "zoho.", ".zoho", "zo ho", "zoho.*", "zoho.>", "a..b"])
def test_bad_subject_prefix_is_a_configuration_error(prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        subject_for(message_for(sample_event()), prefix)
