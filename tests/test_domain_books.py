from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from bridge.domain.books_payload import (
    decode_body,
    operation_from_parameter,
    parse_books_time,
    to_event,
)
from bridge.domain.events import Operation, Product
from bridge.errors import InvalidInput, MalformedRequest, UnsupportedMediaType
from tests.support import SAMPLES, sample

NOW = datetime(2025, 4, 9, 16, 0, tzinfo=UTC)


def _event(payload: dict[str, object], hint: str | None = None):  # type: ignore[no-untyped-def]
    return to_event(
        payload, source="acme", operation=Operation.CHANGED, received_at=NOW, entity_hint=hint
    )


@pytest.mark.parametrize(
    ("name", "module", "record_id"),
    [
        ("books-invoice.json", "invoice", "4372460000000650034"),
        ("books-contact.json", "contact", "4372460000000084001"),
        ("books-payment.json", "payment", "4372460000000651001"),
    ],
)
def test_default_payloads(name: str, module: str, record_id: str) -> None:
    event = _event(sample(name))
    assert (event.product, event.module, event.record_id) == (Product.BOOKS, module, record_id)
    assert event.data == sample(name)[module]
    assert event.dedup_key.startswith(f"books:acme:{module}:{record_id}:")


def test_occurred_at_comes_from_last_modified_time_with_a_colonless_offset() -> None:
    event = _event(sample("books-invoice.json"))
    assert event.occurred_at == datetime(
        2025, 4, 9, 11, 31, 2, tzinfo=timezone(timedelta(hours=-4))
    )


def test_same_entity_same_key_changed_entity_new_key() -> None:
    payload = sample("books-invoice.json")
    first = _event(payload).dedup_key
    reordered = {"invoice": dict(reversed(list(payload["invoice"].items())))}
    assert _event(reordered).dedup_key == first
    payload["invoice"]["status"] = "paid"
    assert _event(payload).dedup_key != first


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_integers_beyond_64_bits_keep_every_digit(content_type: str) -> None:
    # orjson would read them as floats: two different numbers could then look the same
    # to deduplication, and the stored event would hold a rounded number.
    def body(n: int) -> bytes:
        return b'{"invoice": {"invoice_id": "1", "cf_big": %d, "id": "4372460000000650034"}}' % n

    first, second = 123456789012345678901234567890, 123456789012345678901234567891
    one = decode_body(content_type, body(first)).payload
    assert one is not None and one["invoice"]["cf_big"] == first
    other = decode_body(content_type, body(second)).payload
    assert other is not None
    assert _event(one).dedup_key != _event(other).dedup_key
    within = decode_body(content_type, body(2**64 - 1)).payload  # still orjson's, exact
    assert within is not None and within["invoice"]["cf_big"] == 2**64 - 1


def test_json_string_form_field_is_the_payload() -> None:
    raw = (SAMPLES / "books-invoice-jsonstring.form").read_bytes().strip()
    decoded = decode_body("application/x-www-form-urlencoded; charset=UTF-8", raw)
    assert decoded.payload == sample("books-invoice.json")
    assert [k for k, _ in decoded.form] == ["JSONString"]


def test_flat_form_fields_find_their_entity() -> None:
    raw = (SAMPLES / "books-invoice-fields.form").read_bytes().strip()
    decoded = decode_body("application/x-www-form-urlencoded", raw)
    assert decoded.payload is not None
    event = _event(decoded.payload)
    assert (event.module, event.record_id) == ("invoice", "4372460000000650034")


def test_entity_hint_names_the_object() -> None:
    event = _event({"thing": {"thing_id": "7", "a": 1}, "other": {"b": 2}}, hint="thing")
    assert (event.module, event.record_id) == ("thing", "7")


def test_unknown_single_object_is_taken() -> None:
    event = _event({"fixedasset": {"fixedasset_id": "99"}})
    assert (event.module, event.record_id) == ("fixedasset", "99")


def test_customer_payment_id_field_comes_from_the_table() -> None:
    event = _event({"customerpayment": {"payment_id": "5"}})
    assert event.record_id == "5"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b""),
        ("application/json", b"  \n"),
        ("application/json", b"{}"),
        ("application/json", b'{"payload": ""}'),
        ("application/x-www-form-urlencoded", b""),
        ("application/x-www-form-urlencoded", b"payload="),
        ("text/plain", b""),
        (None, b""),
    ],
)
def test_pings_have_no_payload(content_type: str | None, body: bytes) -> None:
    assert decode_body(content_type, body).payload is None


def test_raw_text_json_is_accepted() -> None:
    raw = json.dumps(sample("books-invoice.json")).encode()
    assert decode_body("text/plain", raw).payload == sample("books-invoice.json")
    assert decode_body(None, raw).payload == sample("books-invoice.json")
    assert decode_body("application/vnd.zoho+json", raw).payload == sample("books-invoice.json")


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data; boundary=x"])
def test_other_content_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="not supported"):
        decode_body(content_type, b"<x/>")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", MalformedRequest),
        (b"[1]", MalformedRequest),
        (b"\xff\xfe\x00", MalformedRequest),
    ],
)
def test_bad_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_body("application/json", body)


@pytest.mark.parametrize(
    "payload",
    [
        {"invoice": {"number": "INV-1"}},
        {"invoice": {"invoice_id": ""}},
        {"invoice": {"invoice_id": {"x": 1}}},
        {"note": "hello"},
        {"invoice": {"invoice_id": "1"}, "contact": {"contact_id": "2"}},
    ],
)
def test_bodies_without_one_clear_record_are_malformed(payload: dict[str, object]) -> None:
    with pytest.raises(MalformedRequest):
        _event(payload)


@pytest.mark.parametrize(
    ("value", "operation"),
    [
        (None, Operation.CHANGED),
        ("", Operation.CHANGED),
        ("created", Operation.CREATED),
        ("Updated", Operation.UPDATED),
        ("delete", Operation.DELETED),
        ("changed", Operation.CHANGED),
    ],
)
def test_event_parameter(value: str | None, operation: Operation) -> None:
    assert operation_from_parameter(value) is operation


def test_unknown_event_parameter_is_refused() -> None:
    with pytest.raises(InvalidInput, match="created, updated, deleted, changed"):
        operation_from_parameter("paid")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-04-09T11:25:54-0400", datetime(2025, 4, 9, 15, 25, 54, tzinfo=UTC)),
        ("2025-04-09T11:25:54-04:00", datetime(2025, 4, 9, 15, 25, 54, tzinfo=UTC)),
        ("2025-04-09T20:55:54+0530", datetime(2025, 4, 9, 15, 25, 54, tzinfo=UTC)),
        ("2025-04-09T15:25:54Z", datetime(2025, 4, 9, 15, 25, 54, tzinfo=UTC)),
        ("2025-04-09", None),
        ("2025-04-09T15:25:54", None),
        ("garbage T", None),
        (12345, None),
    ],
)
def test_books_times(text: object, expected: datetime | None) -> None:
    assert parse_books_time(text) == expected


def test_form_round_trip_keeps_fields_for_the_signature() -> None:
    raw = urlencode({"b": "2", "a": "1"}).encode()
    assert decode_body("application/x-www-form-urlencoded", raw).form == (("b", "2"), ("a", "1"))
