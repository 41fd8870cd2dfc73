"""Zoho CRM v8 calls: notification channels, record and deleted-record polling, org check."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.zoho.budget import coql_credits
from bridge.zoho.connection import Connection
from bridge.zoho.paging import CRM_PAGE_LIMIT, MAX_PER_PAGE, CrmCursor, next_crm_cursor
from bridge.zoho.transport import ZohoTransport, json_or_none, raise_for_status
from bridge.zoho.watch import WatchSpec, watch_item, watch_results

WATCH = "/crm/v8/actions/watch"
_LIMIT = re.compile(r"\blimit\s+(?P<limit>\d+)(?:\s*,\s*(?P<count>\d+))?", re.IGNORECASE)
# "fields is mandatory when fetching all records, with at most 50" (zoho.md §4.2).
MAX_FIELDS = 50


class CrmApi:
    """The CRM calls the bridge makes, over a `ZohoTransport`."""

    def __init__(self, client: ZohoTransport) -> None:
        self._client = client

    async def watch_enable(
        self, connection: Connection, specs: Sequence[WatchSpec]
    ) -> list[dict[str, Any]]:
        """POST: subscribe channels; the succeeded items, or `ZohoPartialFailure`."""
        return await self._watch(connection, "POST", specs)

    async def watch_update(
        self, connection: Connection, specs: Sequence[WatchSpec]
    ) -> list[dict[str, Any]]:
        """PUT: replace each channel's details with exactly these."""
        return await self._watch(connection, "PUT", specs)

    async def watch_patch(
        self, connection: Connection, specs: Sequence[WatchSpec]
    ) -> list[dict[str, Any]]:
        """PATCH: change the given details, keep the rest."""
        return await self._watch(connection, "PATCH", specs)

    async def watch_remove_events(
        self, connection: Connection, channel_id: str, events: Sequence[str]
    ) -> list[dict[str, Any]]:
        """PATCH with `_delete_events`: stop some events of one channel."""
        item = {"channel_id": channel_id, "events": list(events), "_delete_events": True}
        response = await self._client.request(
            connection, "crm", "PATCH", WATCH, json={"watch": [item]}
        )
        return watch_results(response.status_code, json_or_none(response))

    async def _watch(
        self, connection: Connection, method: str, specs: Sequence[WatchSpec]
    ) -> list[dict[str, Any]]:
        body = {"watch": [watch_item(spec) for spec in specs]}
        response = await self._client.request(connection, "crm", method, WATCH, json=body)
        return watch_results(response.status_code, json_or_none(response))

    async def watch_get(
        self, connection: Connection, *, channel_id: str | None = None, module: str | None = None
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
            response = await self._client.request(connection, "crm", "GET", WATCH, params=params)
            raise_for_status(response)
            body = json_or_none(response)
            if response.status_code == 204 or not isinstance(body, dict):
                return channels
            channels.extend(body.get("watch") or [])
            if not (body.get("info") or {}).get("more_records"):
                return channels
            page += 1

    async def watch_disable(
        self, connection: Connection, channel_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """DELETE whole channels; one answer item per module of each channel."""
        response = await self._client.request(
            connection, "crm", "DELETE", WATCH, params={"channel_ids": ",".join(channel_ids)}
        )
        return watch_results(response.status_code, json_or_none(response))

    async def list_records(
        self,
        connection: Connection,
        module: str,
        fields: Sequence[str],
        modified_since: datetime | None = None,
        *,
        sort_by: str = "Modified_Time",
        sort_order: str = "asc",
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of records modified after `modified_since` (all when None).

        Uses `page` up to 2,000 records, then `info.next_page_token`; 204 and 304 are
        empty, successful answers (zoho.md §4.2).
        """
        if not fields or len(fields) > MAX_FIELDS:
            raise ValueError(f"CRM needs between 1 and {MAX_FIELDS} fields, got {len(fields)}")
        base = {
            "fields": ",".join(fields),
            "sort_by": sort_by,
            "sort_order": sort_order,
            "per_page": str(MAX_PER_PAGE),
        }
        path = f"/crm/v8/{module}"
        async for page in self._pages(connection, path, base, modified_since):
            yield page

    async def list_deleted(
        self,
        connection: Connection,
        module: str,
        modified_since: datetime | None = None,
        *,
        kind: str = "all",
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of deleted records (`id, display_name, type, deleted_by, deleted_time`)."""
        base = {"type": kind, "per_page": str(MAX_PER_PAGE)}
        async for page in self._pages(
            connection, f"/crm/v8/{module}/deleted", base, modified_since
        ):
            yield page

    async def _pages(
        self, connection: Connection, path: str, base: dict[str, str], since: datetime | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        headers = {} if since is None else {"If-Modified-Since": _http_time(since)}
        cursor: CrmCursor | None = CrmCursor()
        while cursor is not None:
            response = await self._client.request(
                connection, "crm", "GET", path, params={**base, **cursor.params()}, headers=headers
            )
            raise_for_status(response)
            body = json_or_none(response)
            if response.status_code in (204, 304) or not isinstance(body, dict):
                return
            yield list(body.get("data") or [])
            cursor = next_crm_cursor(cursor, body.get("info") or {}, MAX_PER_PAGE)

    async def coql(self, connection: Connection, select_query: str) -> CoqlPage:
        """Run one COQL query; its credits are costed from its LIMIT before sending."""
        response = await self._client.request(
            connection,
            "crm",
            "POST",
            "/crm/v8/coql",
            json={"select_query": select_query},
            credits=coql_credits(coql_limit(select_query)),
        )
        raise_for_status(response)
        body = json_or_none(response)
        if response.status_code == 204 or not isinstance(body, dict):
            return CoqlPage([], more_records=False)
        info = body.get("info") or {}
        return CoqlPage(list(body.get("data") or []), more_records=bool(info.get("more_records")))

    async def org(self, connection: Connection) -> dict[str, Any]:
        """`GET /crm/v8/org`: a cheap call proving the token and host work."""
        response = await self._client.request(connection, "crm", "GET", "/crm/v8/org")
        raise_for_status(response)
        body = json_or_none(response)
        orgs = body.get("org") if isinstance(body, dict) else None
        return dict(orgs[0]) if isinstance(orgs, list) and orgs else {}


@dataclass(frozen=True, slots=True)
class CoqlPage:
    """The rows of one COQL answer and whether more match beyond its LIMIT."""

    rows: list[dict[str, Any]]
    more_records: bool


def coql_limit(select_query: str) -> int:
    """The LIMIT of a COQL query (its row count in `limit offset, count` form); Zoho's
    default of 200 when it has none."""
    match = _LIMIT.search(select_query)
    if match is None:
        return 200
    return int(match["count"] or match["limit"])


def _http_time(when: datetime) -> str:
    """ISO-8601 with offset, as `If-Modified-Since` takes it (zoho.md §4.2)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.replace(microsecond=0).isoformat()


__all__ = ["CRM_PAGE_LIMIT", "CoqlPage", "CrmApi", "coql_limit"]
