"""Zoho CRM notification callbacks (zoho.md §2) → change events, table-driven."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.domain import jsonx
from bridge.domain.events import Event, Operation, Origin, Product
from bridge.errors import MalformedRequest

# Zoho's operations are single words; the bound keeps the dedup key (channel id ≤ 64,
# server_time or body hash ≤ 33, record id ≤ 100) inside its 400-character column.
MAX_OPERATION = 64
# Epoch milliseconds of 10000-01-01T00:00:00Z: datetime (and both databases) end before it.
SERVER_TIME_LIMIT = 253402300800000

# Zoho's callbacks say `insert`/`update` (CONFIRMED) and almost certainly `delete`
# (UNCERTAIN); the subscription verbs `create`/`edit` are accepted too, to be lenient.
# Anything else becomes `changed`, with Zoho's word kept in the event data.
OPERATIONS: dict[str, Operation] = {
    "insert": Operation.CREATED,
    "create": Operation.CREATED,
    "update": Operation.UPDATED,
    "edit": Operation.UPDATED,
    "delete": Operation.DELETED,
}


@dataclass(slots=True)  # not frozen: built per delivery, and frozen init costs twice as much
class CrmCallback:
    """The fields of one callback body, validated. Identifiers hold no NUL and no lone
    surrogate; `affected_fields` and `affected_values` have them escaped (jsonx)."""

    channel_id: str
    token: str | None
    module: str
    operation: str
    ids: tuple[str, ...]
    server_time: int | None
    resource_uri: str | None = None
    affected_fields: dict[str, list[str]] = field(default_factory=dict)
    affected_values: dict[str, dict[str, Any]] = field(default_factory=dict)


def _scalar_id(value: Any, what: str) -> str:
    # Zoho sends ids as strings; a number is accepted, a bool or object is not.
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MalformedRequest(f"{what} must be a non-empty string")


def _affected_fields(raw: Any) -> dict[str, list[str]]:
    # [{"<record_id>": ["Mobile", ...]}, ...]; anything else is ignored, not fatal.
    result: dict[str, list[str]] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict):
                for record_id, names in item.items():
                    if isinstance(names, list):
                        result[str(record_id)] = [str(n) for n in names]
    return result


def _affected_values(raw: Any) -> dict[str, dict[str, Any]]:
    # [{"record_id": "...", "values": {...}}, ...]
    result: dict[str, dict[str, Any]] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and isinstance(item.get("values"), dict):
                result[str(item.get("record_id"))] = item["values"]
    return result


def _load(body: bytes) -> Any:
    try:
        return jsonx.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    except jsonx.Refused as exc:
        raise MalformedRequest(f"body {exc}") from None


def _storable(value: str | None, what: str) -> None:
    # Identifiers are compared, hashed and stored as they are: text neither database can
    # store makes the callback malformed, not data to escape.
    if value is not None and not jsonx.is_storable(value):
        raise MalformedRequest(f"{what} holds a NUL character or an unpaired surrogate")


def parse_callback(body: bytes) -> CrmCallback:
    """Validate a callback body. Raises MalformedRequest with a message saying what is wrong."""
    doc = _load(body)
    if not isinstance(doc, dict):
        raise MalformedRequest("body must be a JSON object")
    if "channel_id" not in doc:
        raise MalformedRequest("channel_id is missing")
    channel_id = _scalar_id(doc["channel_id"], "channel_id")
    token = doc.get("token")
    if token is not None and not isinstance(token, str):
        raise MalformedRequest("token must be a string")
    module = doc.get("module")
    if not isinstance(module, str) or not module:
        raise MalformedRequest("module must be a non-empty string")
    operation = doc.get("operation")
    if not isinstance(operation, str) or not operation:
        raise MalformedRequest("operation must be a non-empty string")
    if len(operation) > MAX_OPERATION:
        raise MalformedRequest(f"operation must be at most {MAX_OPERATION} characters")
    raw_ids = doc.get("ids")
    if not isinstance(raw_ids, list):
        raise MalformedRequest("ids must be a list of record ids")
    ids = tuple(dict.fromkeys(_scalar_id(i, "each id") for i in raw_ids))
    server_time = doc.get("server_time")
    if server_time is not None and (
        not isinstance(server_time, int)
        or isinstance(server_time, bool)
        or not 0 <= server_time < SERVER_TIME_LIMIT
    ):
        raise MalformedRequest("server_time must be epoch milliseconds before the year 10000")
    resource_uri = doc.get("resource_uri")
    affected_fields = _affected_fields(doc.get("affected_fields"))
    affected_values = _affected_values(doc.get("affected_values"))
    if jsonx.may_hold_unstorable(body):
        for value, what in ((channel_id, "channel_id"), (token, "token"), (module, "module"),
                            (operation, "operation"), *((i, "each id") for i in ids)):  # fmt: skip
            _storable(value, what)
        affected_fields = jsonx.escape_unstorable(affected_fields)
        affected_values = jsonx.escape_unstorable(affected_values)
        if isinstance(resource_uri, str):
            resource_uri = jsonx.escape_text(resource_uri)
    return CrmCallback(
        channel_id=channel_id,
        token=token,
        module=module,
        operation=operation,
        ids=ids,
        server_time=server_time,
        resource_uri=resource_uri if isinstance(resource_uri, str) else None,
        affected_fields=affected_fields,
        affected_values=affected_values,
    )


def channel_id_and_token(body: bytes) -> tuple[str, str | None]:
    """Just enough of the body to find the channel and check the token."""
    callback = parse_callback(body)
    return callback.channel_id, callback.token


def to_events(
    callback: CrmCallback, *, source: str, received_at: datetime, body: bytes
) -> list[Event]:
    """One event per record id. Dedup key: channel, server_time, operation, record id."""
    operation = OPERATIONS.get(callback.operation.lower(), Operation.CHANGED)
    if callback.server_time is not None:
        occurred_at = datetime.fromtimestamp(callback.server_time / 1000, tz=UTC)
        moment = str(callback.server_time)
    else:
        # No server_time: the body itself tells repeats apart.
        occurred_at = received_at
        moment = "b" + hashlib.sha256(body).hexdigest()[:32]
    events = []
    for record_id in callback.ids:
        data: dict[str, Any] = {
            "channel_id": callback.channel_id,
            "operation": callback.operation,
            "server_time": callback.server_time,
            "affected_fields": callback.affected_fields.get(record_id, []),
        }
        if record_id in callback.affected_values:
            data["values"] = callback.affected_values[record_id]
        events.append(
            Event(
                product=Product.CRM,
                source=source,
                module=callback.module,
                operation=operation,
                record_id=record_id,
                occurred_at=occurred_at,
                origin=Origin.WEBHOOK,
                dedup_key=f"crm:{callback.channel_id}:{moment}:{callback.operation.lower()}:{record_id}",
                data=data,
                received_at=received_at,
            )
        )
    return events
