from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bridge.domain.crm_callback import parse_callback, to_events
from bridge.domain.events import Operation, Origin, Product
from bridge.errors import MalformedRequest
from tests.support import crm_body, sample

NOW = datetime(2024, 6, 11, 15, 0, tzinfo=UTC)


def _events(body: dict[str, object]) -> list:  # type: ignore[type-arg]
    raw = json.dumps(body).encode()
    return to_events(parse_callback(raw), source="acme", received_at=NOW, body=raw)


@pytest.mark.parametrize(
    ("zoho", "ours"),
    [
        ("insert", Operation.CREATED),
        ("update", Operation.UPDATED),
        ("delete", Operation.DELETED),
        ("create", Operation.CREATED),
        ("edit", Operation.UPDATED),
        ("UPDATE", Operation.UPDATED),
        ("restore", Operation.CHANGED),
    ],
)
def test_operations_map_by_table(zoho: str, ours: Operation) -> None:
    [event] = _events(crm_body(operation=zoho))
    assert event.operation is ours
    assert event.data["operation"] == zoho


def test_zoho_insert_sample_becomes_one_event() -> None:
    [event] = _events(sample("crm-insert.json"))
    assert event.product is Product.CRM
    assert event.origin is Origin.WEBHOOK
    assert (event.module, event.record_id, event.source) == ("Leads", "5725767000003000064", "acme")
    assert event.occurred_at == datetime(2024, 6, 11, 14, 45, 26, 473000, tzinfo=UTC)
    assert event.dedup_key == "crm:1000000068001:1718117126473:insert:5725767000003000064"
    assert "token" not in event.data


def test_several_ids_become_several_events_with_their_own_values() -> None:
    events = _events(sample("crm-update-several-ids.json"))
    assert [e.record_id for e in events] == [
        "5725767000003000301",
        "5725767000003000302",
        "5725767000003000303",
    ]
    assert events[2].data["values"] == {"Lead_Status": "Junk Lead", "Email": "noreply@example.com"}
    assert events[2].data["affected_fields"] == ["Lead_Status", "Email"]
    assert len({e.dedup_key for e in events}) == 3


def test_repeated_id_in_one_callback_is_one_event() -> None:
    assert len(_events(crm_body(ids=["1", "1", 2]))) == 2


def test_numeric_channel_id_is_compared_as_a_string() -> None:
    callback = parse_callback(json.dumps(crm_body(channel_id=1000000068001)).encode())
    assert callback.channel_id == "1000000068001"


def test_missing_server_time_dedups_on_the_body() -> None:
    body = crm_body()
    del body["server_time"]
    first = _events(body)[0].dedup_key
    assert first == _events(body)[0].dedup_key
    assert first != _events({**body, "affected_fields": [{"x": ["y"]}]})[0].dedup_key


def test_empty_ids_is_no_event() -> None:
    assert _events(crm_body(ids=[])) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"module": "Leads"}).encode(), "channel_id is missing"),
        (json.dumps(crm_body(channel_id=True)).encode(), "channel_id"),
        (json.dumps(crm_body(ids="123")).encode(), "ids must be a list"),
        (json.dumps(crm_body(ids=[{"id": 1}])).encode(), "each id"),
        (json.dumps(crm_body(module="")).encode(), "module"),
        (json.dumps(crm_body(operation=None)).encode(), "operation"),
        (json.dumps(crm_body(token=123)).encode(), "token must be a string"),
        (json.dumps(crm_body(server_time="yesterday")).encode(), "server_time"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_callbacks_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        parse_callback(body)


def test_affected_values_keep_integers_beyond_64_bits() -> None:
    big = 2**70 + 1  # orjson alone would round it to a float
    body = crm_body(affected_values=[{"record_id": "5725767000003000064", "values": {"N": big}}])
    callback = parse_callback(json.dumps(body).encode())
    assert callback.affected_values["5725767000003000064"] == {"N": big}
