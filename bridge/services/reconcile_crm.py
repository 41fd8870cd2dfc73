"""The CRM side of a reconciliation run: deletions (`/{module}/deleted`, their own cursor)
and rows a walk may have skipped because records were deleted while it paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from bridge.domain.reconcile_cursor import Cursor, CursorPolicy, advance, read_from, shifted_from
from bridge.services.reconcile_poll import Listing, crm_deleted_version, list_crm_deleted
from bridge.store.watches import WatchInfo
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.meter import CallMeter

log = structlog.get_logger(__name__)


@dataclass
class CrmSide:
    """What a run of a CRM watch does besides listing and matching."""

    zoho: ZohoClient
    deletes_interval: timedelta

    async def deletions(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter, now: datetime,
        policy: CursorPolicy, values: dict[str, Any],
    ) -> Listing | None:  # fmt: skip
        """`/{module}/deleted` when due (C6): every BRIDGE_RECONCILE_DELETES_MINUTES, not
        on every run (an idle run costs one call). Deletions still in their grace period
        are carried by the watch, not listed again."""
        checked = watch.deletes_checked_at
        if checked is not None and now - checked < self.deletes_interval:
            return None
        cursor = Cursor(watch.deletes_watermark, frozenset(watch.deletes_ids))
        since = read_from(cursor, policy, watch.start_at)
        listing = await list_crm_deleted(self.zoho, connection, watch.module, since, meter, now)
        values["deletes_checked_at"] = now
        assert listing.started_at is not None
        moved = advance(
            cursor, completed=listing.completed, zoho_started_at=listing.started_at,
            seen=listing.versions.values(), policy=policy,
        )  # fmt: skip
        if moved is not None:
            values.update(deletes_watermark=moved.watermark,
                          deletes_ids=sorted(moved.ids_at_watermark))  # fmt: skip
        return listing

    async def walk_shift(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter, listing: Listing
    ) -> list[datetime]:
        """Where the cursor must stay because records deleted during a walk of several
        pages may have made it skip rows (`shifted_from`); one `/deleted` call since the
        walk began, for walks of two pages or more only (a single page is read at once:
        idle runs still cost one call). Without it, each record deleted above the reading
        position mid-walk silently lost one record from the walk, for good."""
        if len(listing.walk_pages) < 2:
            return []
        assert listing.started_at is not None
        deleted: list[datetime] = []
        async for page in self.zoho.crm_deleted_pages(
            connection, watch.module, listing.started_at - timedelta(seconds=1), meter=meter
        ):
            deleted += [v.modified_at for v in map(crm_deleted_version, page.rows) if v]
        hold = shifted_from(listing.walk_pages, deleted)
        if hold is None:
            return []
        log.info("records deleted during the walk: the cursor stays where rows may have been "
                 "skipped", watch=watch.id, module=watch.module, held=hold.isoformat())  # fmt: skip
        return [hold]
