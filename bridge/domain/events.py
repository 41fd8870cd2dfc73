"""The normalized change event every Zoho payload is turned into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Product(StrEnum):
    CRM = "crm"
    BOOKS = "books"


class Operation(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    # The sender did not say which (or said something we do not know; the raw word is kept).
    CHANGED = "changed"


class Origin(StrEnum):
    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"
    REPLAY = "replay"


@dataclass(slots=True)  # not frozen: one per delivered record, and frozen init costs 3x
class ChangeEvent:
    """One change to one Zoho record, before it is stored. Treated as immutable.

    `dedup_key` is unique in the database: a second event with the same key is a duplicate.
    `data` is what Zoho sent for this record.
    """

    product: Product
    source: str
    module: str
    operation: Operation
    record_id: str
    occurred_at: datetime
    origin: Origin
    dedup_key: str
    data: dict[str, Any] = field(default_factory=dict)
