"""Zoho CRM v8 calls: notification channels and the org check; record reads are in
`crm_records` (reachable here as `CrmApi.records`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from bridge.zoho.connection import Connection
from bridge.zoho.crm_records import MAX_FIELDS, CrmRecords, coql_limit
from bridge.zoho.meter import CallMeter
from bridge.zoho.pages import CoqlPage
from bridge.zoho.paging import CRM_PAGE_LIMIT, MAX_PER_PAGE
from bridge.zoho.shares import Purpose
from bridge.zoho.transport import ZohoTransport, json_or_none, raise_for_status
from bridge.zoho.watch import WatchSpec, watch_item, watch_results

WATCH = "/crm/v8/actions/watch"


class CrmApi:
    """The CRM calls the bridge makes, over a `ZohoTransport`.

    Channel calls default to the `renewal` purpose: the channel keeper makes them.
    """

    def __init__(self, client: ZohoTransport) -> None:
        self._client = client
        self.records = CrmRecords(client)

    async def watch_enable(
        self, connection: Connection, specs: Sequence[WatchSpec], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """POST: subscribe channels; the succeeded items, or `ZohoPartialFailure`."""
        return await self._watch(connection, "POST", specs, purpose)

    async def watch_update(
        self, connection: Connection, specs: Sequence[WatchSpec], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """PUT: replace each channel's details with exactly these."""
        return await self._watch(connection, "PUT", specs, purpose)

    async def watch_patch(
        self, connection: Connection, specs: Sequence[WatchSpec], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """PATCH: change the given details, keep the rest."""
        return await self._watch(connection, "PATCH", specs, purpose)

    async def watch_remove_events(
        self,
        connection: Connection,
        channel_id: str,
        events: Sequence[str],
        *,
        purpose: Purpose = "renewal",
    ) -> list[dict[str, Any]]:
        """PATCH with `_delete_events`: stop some events of one channel."""
        item = {"channel_id": channel_id, "events": list(events), "_delete_events": True}
        response = await self._client.request(
            connection, "crm", "PATCH", WATCH, json={"watch": [item]}, purpose=purpose
        )
        return watch_results(response.status_code, json_or_none(response))

    async def _watch(
        self, connection: Connection, method: str, specs: Sequence[WatchSpec], purpose: Purpose
    ) -> list[dict[str, Any]]:
        body = {"watch": [watch_item(spec) for spec in specs]}
        response = await self._client.request(
            connection, "crm", method, WATCH, json=body, purpose=purpose
        )
        return watch_results(response.status_code, json_or_none(response))

    async def watch_get(
        self,
        connection: Connection,
        *,
        channel_id: str | None = None,
        module: str | None = None,
        purpose: Purpose = "renewal",
    ) -> list[dict[str, Any]]:
        """Every channel Zoho knows for this connection (204 → none)."""
        channels: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"page": str(page), "per_page": str(MAX_PER_PAGE)}
            if channel_id is not None:
                params["channel_id"] = channel_id
            if module is not None:
                params["module"] = module
            response = await self._client.request(
                connection, "crm", "GET", WATCH, params=params, purpose=purpose
            )
            raise_for_status(response)
            body = json_or_none(response)
            if response.status_code == 204 or not isinstance(body, dict):
                return channels
            channels.extend(body.get("watch") or [])
            if not (body.get("info") or {}).get("more_records"):
                return channels
            page += 1

    async def watch_disable(
        self, connection: Connection, channel_ids: Sequence[str], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """DELETE whole channels; one answer item per module of each channel."""
        params = {"channel_ids": ",".join(channel_ids)}
        response = await self._client.request(
            connection, "crm", "DELETE", WATCH, params=params, purpose=purpose
        )
        return watch_results(response.status_code, json_or_none(response))

    def list_records(
        self,
        connection: Connection,
        module: str,
        fields: Sequence[str],
        modified_since: datetime | None = None,
        *,
        sort_by: str = "Modified_Time",
        sort_order: str = "asc",
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of records modified after `modified_since` (all when None).

        Uses `page` up to 2,000 records, then `info.next_page_token`; 204 and 304 are
        empty, successful answers (zoho.md §4.2) and yield nothing.
        """
        return self.records.rows(
            connection,
            module,
            fields,
            modified_since,
            sort_by=sort_by,
            sort_order=sort_order,
            purpose=purpose,
            meter=meter,
        )

    async def list_deleted(
        self,
        connection: Connection,
        module: str,
        modified_since: datetime | None = None,
        *,
        kind: str = "all",
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of deleted records (`id, display_name, type, deleted_by, deleted_time`)."""
        async for page in self.records.deleted(
            connection, module, modified_since, kind=kind, purpose=purpose, meter=meter
        ):
            if page.status not in (204, 304):
                yield page.rows

    async def coql(
        self,
        connection: Connection,
        select_query: str,
        *,
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> CoqlPage:
        """Run one COQL query; its credits are costed from its LIMIT before sending."""
        return await self.records.coql(connection, select_query, purpose=purpose, meter=meter)

    async def org(self, connection: Connection, *, purpose: Purpose = "check") -> dict[str, Any]:
        """`GET /crm/v8/org`: a cheap call proving the token and host work."""
        response = await self._client.request(
            connection, "crm", "GET", "/crm/v8/org", purpose=purpose
        )
        raise_for_status(response)
        body = json_or_none(response)
        orgs = body.get("org") if isinstance(body, dict) else None
        return dict(orgs[0]) if isinstance(orgs, list) and orgs else {}


__all__ = ["CRM_PAGE_LIMIT", "MAX_FIELDS", "CoqlPage", "CrmApi", "coql_limit"]
