"""`SandboxState`: everything the fake Zoho knows, and the Python API tests drive it with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.domain.books_entities import BOOKS_ENTITIES as _TABLE
from bridge.sandbox.books_ops import BooksOps
from bridge.sandbox.crm_ops import CrmOps

# Books entity path → (webhook wrapper key, id field), from the one table in
# bridge.domain.books_entities; kept for callers of the older three-entity mapping.
BOOKS_ENTITIES: dict[str, tuple[str, str]] = {e.path: (e.key, e.id_field) for e in _TABLE}


class SandboxState(CrmOps, BooksOps):
    """Orgs, tokens, records, channels, counters and the callback outbox of a fake Zoho.

    Record changes made here (or through `/_sandbox/`) fire callbacks to live channels
    and Books webhooks; `drop_rate` drops a seeded-random share of them on purpose and
    `dropped_versions()` says which. The fault switches (`date_skew`, `visibility_delay`,
    `page_token_ttl`, `books_duplicate_every`, `books_entity_settings`, `throttle`,
    `expire_page_tokens`, `on_page`, `convert_callbacks`) are described in the package
    docstring.
    """

    def burst(
        self,
        *,
        crm: Mapping[str, int] | None = None,
        books: Mapping[str, int] | None = None,
        edits: int = 0,
        org: str | None = None,
    ) -> dict[str, Any]:
        """Create `crm[module]` CRM and `books[entity]` Books records, then make `edits`
        updates round-robin over them: a burst of changes for demos and load tests.
        Returns the ids created, per product and module."""
        created: list[tuple[str, str, str]] = []
        out: dict[str, Any] = {"crm": {}, "books": {}}
        for module, n in (crm or {}).items():
            ids = [self.crm_create(module, {"Last_Name": f"Burst {i}"}, org=org) for i in range(n)]
            out["crm"][module] = ids
            created += [("crm", module, i) for i in ids]
        for entity, n in (books or {}).items():
            ids = [
                self.books_create(entity, {"reference_number": f"B-{i}"}, org=org) for i in range(n)
            ]
            out["books"][entity] = ids
            created += [("books", entity, i) for i in ids]
        for n in range(edits if created else 0):
            product, module, record_id = created[n % len(created)]
            if product == "crm":
                self.crm_update(module, record_id, {"Description": f"edit {n}"}, org=org)
            else:
                self.books_update(module, record_id, {"notes": f"edit {n}"}, org=org)
        return out
