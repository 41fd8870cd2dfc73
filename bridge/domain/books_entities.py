"""The one table of Zoho Books entities the bridge polls: list path ↔ webhook key ↔ id field.

A Books webhook wraps its record under the entity's singular key (`{"invoice": {...}}`,
`{"payment": {...}}`, zoho.md §3.2); the API lists the same records under a plural path
(`/books/v3/invoices`, `/books/v3/customerpayments`, zoho.md §4.1). Events always carry the
webhook key as their module (`invoice`, never `invoices`), whatever their origin, so a
webhook and a polled version of the same record can be matched.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BooksEntity:
    """One Books entity: `path` in the API, `key` in webhooks and events, `id_field`."""

    path: str
    key: str
    id_field: str


BOOKS_ENTITIES: tuple[BooksEntity, ...] = (
    BooksEntity("invoices", "invoice", "invoice_id"),
    BooksEntity("contacts", "contact", "contact_id"),
    # The list path says "customerpayments", the webhook wraps the record as "payment".
    BooksEntity("customerpayments", "payment", "payment_id"),
    BooksEntity("bills", "bill", "bill_id"),
    BooksEntity("salesorders", "salesorder", "salesorder_id"),
    BooksEntity("estimates", "estimate", "estimate_id"),
    BooksEntity("creditnotes", "creditnote", "creditnote_id"),
    BooksEntity("expenses", "expense", "expense_id"),
    BooksEntity("items", "item", "item_id"),
)

_BY_PATH = {e.path: e for e in BOOKS_ENTITIES}
_BY_KEY = {e.key: e for e in BOOKS_ENTITIES}


def books_entity(name: str) -> BooksEntity | None:
    """The entity called `name`, by its list path (`invoices`) or webhook key (`invoice`)."""
    lowered = name.strip().lower()
    return _BY_PATH.get(lowered) or _BY_KEY.get(lowered)


def by_path(path: str) -> BooksEntity:
    """The entity listed at `path`; KeyError for a path not in the table."""
    return _BY_PATH[path]


def by_key(key: str) -> BooksEntity:
    """The entity whose webhooks wrap records as `key`; KeyError if not in the table."""
    return _BY_KEY[key]
