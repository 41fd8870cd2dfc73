"""Zoho Books workflow webhook bodies (zoho.md §3) → change events, table-driven."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from bridge.domain import jsonx
from bridge.domain.events import Event, Operation, Origin, Product
from bridge.errors import InvalidInput, MalformedRequest, UnsupportedMediaType

# Entity key → the field that holds its id, where it is not simply `<entity>_id`.
ID_FIELDS: dict[str, str] = {
    "customerpayment": "payment_id",
    "customer_payment": "payment_id",
    "vendorpayment": "payment_id",
    "vendor_payment": "payment_id",
    "recurringinvoice": "recurring_invoice_id",
    "recurring_invoice": "recurring_invoice_id",
    "salesreturn": "salesreturn_id",
}
# Entities Books is known to send; used to pick the entity when a body has several objects.
KNOWN_ENTITIES = frozenset(
    {
        "invoice", "contact", "payment", "customerpayment", "estimate", "salesorder",
        "purchaseorder", "bill", "expense", "creditnote", "vendorpayment", "vendorcredit",
        "item", "journal", "project", "retainerinvoice", "recurringinvoice", "salesreceipt",
        "deliverychallan", "salesreturn", "user", "timeentry", "task", "account",
    }
)  # fmt: skip

# `?event=` values → operation. Without the parameter Books does not say which: `changed`.
EVENT_PARAMETER: dict[str, Operation] = {
    "created": Operation.CREATED,
    "create": Operation.CREATED,
    "insert": Operation.CREATED,
    "updated": Operation.UPDATED,
    "update": Operation.UPDATED,
    "edit": Operation.UPDATED,
    "deleted": Operation.DELETED,
    "delete": Operation.DELETED,
    "changed": Operation.CHANGED,
}

JSON_TYPES = ("application/json", "text/json")
FORM_TYPE = "application/x-www-form-urlencoded"
TEXT_TYPES = ("text/plain", "")


@dataclass(slots=True)  # not frozen: built per delivery (see store/records.py)
class BooksBody:
    """A decoded body: `payload` is None for an empty or ping delivery; `form` holds the
    URL-decoded form fields (they take part in the signature). `unstorable`: the payload
    may hold NUL or lone surrogates (`to_event` checks and escapes it then)."""

    payload: dict[str, Any] | None
    form: tuple[tuple[str, str], ...] = ()
    unstorable: bool = True


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(kind: str) -> bool:
    return kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))


def _load_json(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        doc = jsonx.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    except jsonx.Refused as exc:
        raise MalformedRequest(f"body {exc}") from None
    return _json_object(doc)


def _json_object(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        raise MalformedRequest("body must be a JSON object")
    # Pipedream's Books sources drop `{"payload": ""}`: what Books sends as a test ping.
    if not doc or doc == {"payload": ""}:
        return None
    return doc


def decode_body(content_type: str | None, body: bytes) -> BooksBody:
    """Decode by content type: JSON, form-urlencoded (incl. one `JSONString` field), raw text."""
    kind = media_type(content_type)
    is_json = _is_json_type(kind) or kind in TEXT_TYPES
    if is_json and body[:1] == b"{":
        # The usual delivery: orjson reads the bytes and checks they are UTF-8 itself.
        # Anything it refuses takes the path below, which says what is wrong.
        try:
            payload = _json_object(jsonx.loads_utf8(body))
        except json.JSONDecodeError:
            pass
        except jsonx.Refused as exc:
            raise MalformedRequest(f"body {exc}") from None
        else:
            return BooksBody(payload, (), jsonx.may_hold_unstorable(body))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("body is not UTF-8 text") from None
    if is_json:
        return BooksBody(_load_json(text), (), jsonx.may_hold_unstorable(body))
    if kind == FORM_TYPE:
        form = form_fields(text)
        fields = dict(form)
        if "JSONString" in fields:
            return BooksBody(_load_json(fields["JSONString"]), form)
        if not fields or all(not v for v in fields.values()):
            return BooksBody(None, form)
        return BooksBody(dict(fields), form)
    raise UnsupportedMediaType(
        f"content type {kind!r} is not supported; send application/json, "
        "application/x-www-form-urlencoded or text/plain"
    )


def form_fields(text: str) -> tuple[tuple[str, str], ...]:
    """URL-decoded form fields, in order (undecodable bytes become U+FFFD)."""
    return tuple(parse_qsl(text, keep_blank_values=True))


def signed_fields(content_type: str | None, body: bytes) -> tuple[tuple[str, str], ...]:
    """The form fields the signature covers, read from a body not yet verified: only as far
    as the signature needs (nothing for a body that is not a form), and never refusing it,
    so that an unverified caller learns nothing about its body before the verdict."""
    if media_type(content_type) != FORM_TYPE:
        return ()
    return form_fields(body.decode("utf-8", "replace"))


def operation_from_parameter(value: str | None) -> Operation:
    if value is None or value == "":
        return Operation.CHANGED
    try:
        return EVENT_PARAMETER[value.strip().lower()]
    except KeyError:
        raise InvalidInput(
            f"event parameter {value!r} is not one of created, updated, deleted, changed"
        ) from None


def id_field(entity: str) -> str:
    return ID_FIELDS.get(entity, f"{entity}_id")


def _find_entity(payload: dict[str, Any], hint: str | None) -> tuple[str, dict[str, Any]]:
    if hint:
        value = payload.get(hint)
        return (hint, value) if isinstance(value, dict) else (hint, payload)
    objects = [key for key, value in payload.items() if isinstance(value, dict)]
    known = [key for key in objects if key.lower() in KNOWN_ENTITIES]
    if len(known) == 1:
        return known[0], payload[known[0]]
    if len(objects) == 1 and not known:
        return objects[0], payload[objects[0]]
    # A flat body (form fields, or a raw template): the entity is the `<entity>_id` it carries.
    flat = [k[: -len("_id")] for k in payload if k.endswith("_id") and k[:-3] in KNOWN_ENTITIES]
    if len(flat) >= 1:
        return flat[0], payload
    raise MalformedRequest(
        'no Zoho Books record found: expected an object such as {"invoice": {...}}, '
        "or add ?entity=<name> to the webhook URL"
    )


_COLONLESS_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


def parse_books_time(value: Any) -> datetime | None:
    """Books writes offsets without a colon (`2025-04-09T11:25:54-0400`); accept both."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads -0400 and Z itself
    except ValueError:
        try:
            text = _COLONLESS_OFFSET.sub(r"\1:\2", value.strip().replace("Z", "+00:00"))
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return None
    if parsed.year in (1, 9999):  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            return None
    return parsed


def to_event(
    payload: dict[str, Any],
    *,
    source: str,
    operation: Operation,
    received_at: datetime,
    entity_hint: str | None = None,
    unstorable: bool = True,
) -> Event:
    """The event for one Books delivery. Dedup key: source, entity, record id, entity hash.

    `unstorable` (see `BooksBody`): the entity name and record id must then be storable as
    they are (they are identifiers: 400 otherwise), and the record is stored with NUL and
    lone surrogates escaped (jsonx.escape_unstorable), its hash taken of that form."""
    if entity_hint is not None and not jsonx.is_storable(entity_hint):
        raise MalformedRequest("the entity parameter holds a NUL character")
    entity, record = _find_entity(payload, entity_hint)
    if unstorable and not jsonx.is_storable(entity):
        raise MalformedRequest("the entity name holds a NUL character or an unpaired surrogate")
    record_id = record.get(id_field(entity))
    if record_id is None or isinstance(record_id, (dict, list, bool)) or str(record_id) == "":
        raise MalformedRequest(f"the {entity} has no {id_field(entity)}")
    record_id = str(record_id)
    if unstorable:
        if not jsonx.is_storable(record_id):
            raise MalformedRequest(
                f"the {entity}'s {id_field(entity)} holds a NUL character or an unpaired surrogate"
            )
        record = jsonx.escape_unstorable(record)
    digest = hashlib.sha256(jsonx.canonical(record)).hexdigest()
    return Event(
        product=Product.BOOKS,
        source=source,
        module=entity,
        operation=operation,
        record_id=record_id,
        occurred_at=parse_books_time(record.get("last_modified_time")) or received_at,
        origin=Origin.WEBHOOK,
        dedup_key=f"books:{source}:{entity}:{record_id}:{digest}",
        data=record,
        received_at=received_at,
    )
