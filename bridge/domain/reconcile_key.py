"""The dedup key of one record version, shared by reconciled events and Books webhooks.

A reconciled event is stored under the key of the version it reports, so re-reading the
same version in the overlap of the next run is a duplicate the database refuses, not a second
event (e.1, e.6). Books webhooks of a source linked to a connection are stored under the same
key — module = the webhook entity key (`invoice`), time = the entity's `last_modified_time`
(B14) — so a webhook arriving after its version was reconciled is a duplicate too.

The key is unambiguous: every part is length-prefixed, so two different tuples can never
spell the same key (a naive `":".join(...)` makes `("a:b", "c")` and `("a", "b:c")` one key,
and one record would silence another). Times are UTC epoch seconds, so one instant written
with two offsets (`-0400`, `+00:00`, B5) is one key. A key that would not fit the
`events.dedup_key` column (400 characters) is replaced by a SHA-256 of its full text, under
another prefix so a hashed key can never equal a plain one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from bridge.domain.events import Product
from bridge.domain.reconcile_cursor import zoho_second

KEY_LIMIT = 400
PREFIX = "v1:"
HASHED_PREFIX = "v1h:"


def _part(text: str) -> str:
    return f"{len(text)}:{text}"


def version_key(
    connection: str,
    product: Product,
    module: str,
    record_id: str,
    modified_at: datetime,
    *,
    deleted: bool = False,
) -> str:
    """`v1:` + length-prefixed (connection, product, module, record id, epoch seconds, kind).

    `module` is compared case-insensitively (CRM API names, Books entity keys), so a caller
    spelling `Leads` once and `leads` later cannot emit the same version twice. `deleted`
    versions get their own key: a Books delete webhook carries the entity's last
    `last_modified_time`, which is also the key of the record's last update.
    """
    if not connection or not module or not record_id:
        raise ValueError("connection, module and record id must not be empty")
    seconds = int(zoho_second(modified_at, "modified_at").timestamp())
    parts = (connection, product.value, module.casefold(), record_id, str(seconds))
    text = PREFIX + "".join(_part(p) for p in parts) + ("d" if deleted else "m")
    if len(text) <= KEY_LIMIT:
        return text
    return HASHED_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()
