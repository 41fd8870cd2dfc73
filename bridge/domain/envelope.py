"""The event envelope every sink delivers: CloudEvents 1.0, structured JSON mode.

One function builds the envelope and one serialises it, so every sink sends the same bytes
for the same event; subscribers that switch from Redis to NATS see no difference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from bridge.domain.events import Event, Origin, Product, StoredEvent
from bridge.errors import ConfigurationError

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
DEFAULT_SUBJECT_PREFIX = "zoho"

# NATS subject tokens may not hold `.`, `*`, `>` or whitespace; AMQP topic words may not
# hold `.`, `*` or `#`. One conservative alphabet serves both brokers.
_UNSAFE_TOKEN_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True, slots=True)
class Message:
    """What a sink publishes for one event: the envelope as the bytes every sink sends
    (and signs), and the envelope attributes brokers route and label by.

    The relay builds messages from the stored rows' texts (`store.events_envelopes`);
    `message_for` builds one from a `StoredEvent`, to the same bytes.
    """

    id: str
    seq: int
    type: str
    source: str
    module: str
    operation: str
    record_id: str
    body: bytes

    @property
    def subject(self) -> str:
        """The envelope's `subject`: `<module>/<record id>`."""
        return f"{self.module}/{self.record_id}"


def type_of(product: str, module: str, operation: str) -> str:
    """The envelope `type` of a product, module and operation (their stored values)."""
    if product == Product.CRM.value:
        return f"com.zoho.crm.record.{operation}"
    return f"com.zoho.books.{module.lower()}.{operation}"


def event_type(event: StoredEvent) -> str:
    """`com.zoho.crm.record.<op>` or `com.zoho.books.<entity>.<op>`."""
    return type_of(event.product.value, event.module, event.operation.value)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a `Z`, e.g. `2024-06-11T14:25:53.625Z`."""
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def build_envelope(event: StoredEvent) -> dict[str, Any]:
    """The CloudEvents structured-mode envelope of `event`, as documented in product.md
    (`envelope_head` writes the attributes before `bridgeseq` as text, in this order)."""
    return {
        "specversion": SPECVERSION,
        "id": event.id,
        "source": f"zoho-bridge/{event.product.value}/{event.source}",
        "type": event_type(event),
        "subject": f"{event.module}/{event.record_id}",
        "time": format_time(event.occurred_at),
        "datacontenttype": "application/json",
        "zohomodule": event.module,
        "zohooperation": event.operation.value,
        "zohorecordid": event.record_id,
        "zohoorigin": event.origin.value,
        "bridgeseq": event.seq,
        **_reconciled(event),
        "data": event.data,
    }


def _reconciled(event: StoredEvent) -> dict[str, Any]:
    """The extension attributes of a reconciled event: why no webhook announced it, and
    whether the polled version may stand for several edits (docs/reconciliation.md)."""
    if event.origin is not Origin.RECONCILIATION:
        return {}
    attributes: dict[str, Any] = {}
    if event.miss_cause is not None:
        attributes["zohomisscause"] = event.miss_cause
    if event.collapsed is not None:
        attributes["zohocollapsed"] = event.collapsed
    return attributes


# JSON's string quoting as `json.dumps(..., ensure_ascii=False)` does it (in C).
_quote: Callable[[str], str] = json.encoder.encode_basestring


def envelope_head(event: Event | StoredEvent) -> str | None:
    """The envelope's text up to its `seq`: `envelope_bytes` of the stored event begins
    with it, followed by the seq, `,"data":`, `data` and `}`. Stored with the event
    (`events.envelope_head`), so that reads write each envelope with one `printf` of four
    values instead of quoting and checking each field per row (`events_envelope_sql`).
    The attributes of `build_envelope`, in its order, written out; what depends only on
    the product, source, module, operation and origin (most of it) comes from a cache.

    None for a reconciled event: its extra attributes come after the seq (their rows are
    written the longer way)."""
    origin = event.origin.value
    if origin == Origin.RECONCILIATION.value:
        return None
    module, record_id = event.module, event.record_id
    kind, attributes, end = _head_parts(
        event.product.value, event.source, module, event.operation.value, origin
    )
    return (
        f'{{"specversion":"{SPECVERSION}","id":{_quote(event.id)}{kind}'
        f'{_quote(f"{module}/{record_id}")},"time":"{format_time(event.occurred_at)}"'
        f"{attributes}{_quote(record_id)}{end}"
    )


@lru_cache(maxsize=4096)
def _head_parts(
    product: str, source: str, module: str, operation: str, origin: str
) -> tuple[str, str, str]:
    """The head's texts around the id, the subject, the time and the record id."""
    return (
        f',"source":{_quote(f"zoho-bridge/{product}/{source}")},'
        f'"type":{_quote(type_of(product, module, operation))},"subject":',
        f',"datacontenttype":"application/json","zohomodule":{_quote(module)},'
        f'"zohooperation":{_quote(operation)},"zohorecordid":',
        f',"zohoorigin":{_quote(origin)},"bridgeseq":',
    )


def envelope_bytes(event: StoredEvent) -> bytes:
    """The envelope as compact UTF-8 JSON: the exact bytes every sink sends (and signs)."""
    # allow_nan=False: NaN is not JSON and would break strict subscribers' parsers.
    text = json.dumps(
        build_envelope(event), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def message_for(event: StoredEvent) -> Message:
    """The message a sink publishes for `event`."""
    return Message(
        event.id, event.seq, event_type(event), event.source, event.module,
        event.operation.value, event.record_id, envelope_bytes(event),
    )  # fmt: skip


def subject_token(value: str) -> str:
    """`value` made safe as one NATS subject token / AMQP routing-key word.

    Distinct names can map to the same token (`a.b` and `a_b`); subscribers needing the exact
    name read `source`/`zohomodule` from the envelope, the subject only routes.
    """
    return _UNSAFE_TOKEN_CHARS.sub("_", value) or "_"


def check_subject_prefix(prefix: str) -> str:
    """`prefix` if it is one or more safe dot-separated tokens, else ConfigurationError."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(f"invalid subject prefix {prefix!r}: use tokens of [A-Za-z0-9_-]")
    return prefix


def subject_for(message: Message, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """`<prefix>.<source>.<module>.<operation>`: the NATS subject and the AMQP routing key."""
    tokens = (message.source, message.module, message.operation)
    return ".".join([check_subject_prefix(prefix), *map(subject_token, tokens)])
