"""Zoho CRM v8 record reads for reconciliation: versions, deleted records, ids, COQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from bridge.zoho.budget import coql_credits
from bridge.zoho.connection import Connection
from bridge.zoho.coql import MAX_COQL_LIMIT, VERSION_FIELDS, CoqlKey, keyset_query
from bridge.zoho.meter import CallMeter
from bridge.zoho.pages import CoqlPage, CrmPage
from bridge.zoho.paging import MAX_PER_PAGE, CrmCursor, is_stale_page_token, next_crm_cursor
from bridge.zoho.shares import Purpose
from bridge.zoho.times import iso_seconds, parse_http_date
from bridge.zoho.transport import ZohoTransport, json_or_none, raise_for_status

_LIMIT = re.compile(r"\blimit\s+(?P<limit>\d+)(?:\s*,\s*(?P<count>\d+))?", re.IGNORECASE)
# "fields is mandatory when fetching all records, with at most 50" (zoho.md §4.2).
MAX_FIELDS = 50
# v1 took at most 100 ids per call; the v8 maximum was not found (reconciliation.md C12,
# UNCERTAIN: assume 100).
MAX_IDS = 100
# Restarts at page 1 after a stale page token before giving up (Activepieces restarts).
MAX_RESTARTS = 2


def version_params(module: str, fields: Sequence[str] = VERSION_FIELDS) -> dict[str, str]:
    """The query of a newest-first version walk (reconciliation.md e #3).

    Leads add `converted=both`: a converted lead leaves the default list, and that is not
    a delete (reconciliation.md C8, a.2 #6).
    """
    if not fields or len(fields) > MAX_FIELDS:
        raise ValueError(f"CRM needs between 1 and {MAX_FIELDS} fields, got {len(fields)}")
    params = {
        "fields": ",".join(fields),
        "sort_by": "Modified_Time",
        "sort_order": "desc",
        "per_page": str(MAX_PER_PAGE),
    }
    if module == "Leads":
        params["converted"] = "both"
    return params


class CrmRecords:
    """Record reads over a `ZohoTransport`; every method takes `purpose` and `meter`."""

    def __init__(self, client: ZohoTransport) -> None:
        self._client = client

    async def versions(
        self,
        connection: Connection,
        module: str,
        *,
        since: datetime | None = None,
        fields: Sequence[str] = VERSION_FIELDS,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
        max_restarts: int = MAX_RESTARTS,
    ) -> AsyncIterator[CrmPage]:
        """Pages of `(id, Modified_Time, Created_Time)`, newest first; break out at the
        checkpoint. `since` sends `If-Modified-Since`, so an idle module costs one
        304/204, still yielded as an empty page with Zoho's `Date`."""
        params = version_params(module, fields)
        async for page in self._walk(
            connection, f"/crm/v8/{module}", params, since, purpose, meter, max_restarts
        ):
            yield page

    async def deleted(
        self,
        connection: Connection,
        module: str,
        since: datetime | None = None,
        *,
        kind: str = "all",
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[CrmPage]:
        """Pages of deleted records (`id, display_name, type, deleted_by, deleted_time`)."""
        base = {"type": kind, "per_page": str(MAX_PER_PAGE)}
        path = f"/crm/v8/{module}/deleted"
        async for page in self._walk(connection, path, base, since, purpose, meter, 0):
            yield page

    async def rows(
        self,
        connection: Connection,
        module: str,
        fields: Sequence[str],
        since: datetime | None,
        *,
        sort_by: str = "Modified_Time",
        sort_order: str = "asc",
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows of each non-empty answer (the older list API, kept for its callers)."""
        if not fields or len(fields) > MAX_FIELDS:
            raise ValueError(f"CRM needs between 1 and {MAX_FIELDS} fields, got {len(fields)}")
        base = {
            "fields": ",".join(fields),
            "sort_by": sort_by,
            "sort_order": sort_order,
            "per_page": str(MAX_PER_PAGE),
        }
        async for page in self._walk(
            connection, f"/crm/v8/{module}", base, since, purpose, meter, 0
        ):
            if page.status not in (204, 304):
                yield page.rows

    async def _walk(
        self,
        connection: Connection,
        path: str,
        base: dict[str, str],
        since: datetime | None,
        purpose: Purpose,
        meter: CallMeter | None,
        max_restarts: int,
    ) -> AsyncIterator[CrmPage]:
        """`page` up to 2,000 records, then `info.next_page_token` (zoho.md §4.2)."""
        headers = {} if since is None else {"If-Modified-Since": iso_seconds(since)}
        cursor: CrmCursor | None = CrmCursor()
        restarts, restarted = 0, False
        while cursor is not None:
            response = await self._client.request(
                connection,
                "crm",
                "GET",
                path,
                params={**base, **cursor.params()},
                headers=headers,
                purpose=purpose,
                meter=meter,
            )
            body = json_or_none(response)
            stale = is_stale_page_token(response.status_code, body)
            if cursor.page_token is not None and stale and restarts < max_restarts:
                # Start over at page 1: re-reads are cheaper than a gap, and the caller
                # dedupes them (reconciliation.md C5).
                restarts, restarted, cursor = restarts + 1, True, CrmCursor()
                continue
            raise_for_status(response)
            server_time = parse_http_date(response.headers.get("date"))
            if response.status_code in (204, 304) or not isinstance(body, dict):
                yield CrmPage([], response.status_code, server_time, restarted=restarted)
                return
            info = body.get("info") or {}
            yield CrmPage(
                list(body.get("data") or []),
                response.status_code,
                server_time,
                more_records=bool(info.get("more_records")),
                restarted=restarted,
            )
            restarted = False
            cursor = next_crm_cursor(cursor, info, MAX_PER_PAGE)

    async def by_ids(
        self,
        connection: Connection,
        module: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str] | None = None,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> list[dict[str, Any]]:
        """Full records for `ids`, `MAX_IDS` per call; ids Zoho does not return are absent.

        Without `fields` Zoho returns every field (the `fields` rule binds only when
        listing all records, zoho.md §4.2).
        """
        if fields is not None and not 1 <= len(fields) <= MAX_FIELDS:
            raise ValueError(f"CRM needs between 1 and {MAX_FIELDS} fields")
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), MAX_IDS):
            params = {"ids": ",".join(wanted[start : start + MAX_IDS])}
            if fields is not None:
                params["fields"] = ",".join(fields)
            if module == "Leads":
                params["converted"] = "both"  # a converted lead is still the record asked for
            response = await self._client.request(
                connection,
                "crm",
                "GET",
                f"/crm/v8/{module}",
                params=params,
                purpose=purpose,
                meter=meter,
            )
            raise_for_status(response)
            body = json_or_none(response)
            if response.status_code != 204 and isinstance(body, dict):
                found.extend(body.get("data") or [])
        return found

    async def coql(
        self,
        connection: Connection,
        select_query: str,
        *,
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> CoqlPage:
        """Run one COQL query; its credits are costed from its LIMIT before sending."""
        response = await self._client.request(
            connection,
            "crm",
            "POST",
            "/crm/v8/coql",
            json={"select_query": select_query},
            credits=coql_credits(coql_limit(select_query)),
            purpose=purpose,
            meter=meter,
        )
        raise_for_status(response)
        body = json_or_none(response)
        server_time = parse_http_date(response.headers.get("date"))
        if response.status_code == 204 or not isinstance(body, dict):
            return CoqlPage([], False, response.status_code, server_time)
        more = bool((body.get("info") or {}).get("more_records"))
        return CoqlPage(list(body.get("data") or []), more, response.status_code, server_time)

    async def coql_versions(
        self,
        connection: Connection,
        module: str,
        *,
        since: datetime | None = None,
        after: CoqlKey | None = None,
        until: datetime | None = None,
        limit: int = MAX_COQL_LIMIT,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> CoqlPage:
        """One keyset page of `(id, Modified_Time, Created_Time)`, oldest first: `since`
        for the first page, then `after=CoqlKey.of(page.rows[-1])` while `more_records`."""
        query = keyset_query(module, since=since, after=after, until=until, limit=limit)
        return await self.coql(connection, query, purpose=purpose, meter=meter)


def coql_limit(select_query: str) -> int:
    """The LIMIT of a COQL query (its row count in `limit offset, count` form); Zoho's
    default of 200 when it has none."""
    match = _LIMIT.search(select_query)
    if match is None:
        return 200
    return int(match["count"] or match["limit"])
