"""The records behind a run's misses: fetched from Zoho only for the versions nobody
announced (reconciliation.md e #5), so a run that finds nothing missing fetches nothing."""

from __future__ import annotations

from typing import Any

from bridge.domain.books_entities import by_key
from bridge.domain.events import Product
from bridge.services.reconcile_plan import Plan
from bridge.services.reconcile_poll import Listing
from bridge.store.watches import WatchInfo
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.meter import CallMeter


async def fill_data(
    zoho: ZohoClient, watch: WatchInfo, connection: Connection, decided: Plan,
    listing: Listing, deletions: Listing | None, meter: CallMeter,
) -> None:  # fmt: skip
    """Fetch the records of the unannounced versions only (e #5): CRM `?ids=` by 100,
    Books one `GET` each; a record Zoho no longer returns keeps its listed row."""
    wanted = [m for m in decided.misses if not m.version.deleted]
    full = watch.options.get("full_records", True)
    records: dict[str, dict[str, Any]] = {}
    if wanted and full and watch.product is Product.CRM:
        fetched = await zoho.crm_get_records(
            connection, watch.module, [m.version.record_id for m in wanted], meter=meter
        )
        records = {str(r.get("id")): r for r in fetched}
    elif wanted and full:
        entity = by_key(watch.module)
        for miss in wanted:
            found = await zoho.books_get(connection, entity.path, miss.version.record_id,
                                         meter=meter)  # fmt: skip
            if found is not None:
                records[miss.version.record_id] = found
    kept = []
    for miss in decided.misses:
        record_id = miss.version.record_id
        if miss.version.deleted:
            rows = deletions.rows if deletions is not None else {}
            miss.event.data = dict(rows.get(record_id) or {"id": record_id})
        else:
            miss.event.data = dict(records.get(record_id) or listing.rows.get(record_id) or {})
        kept.append(miss)
    decided.misses = kept
