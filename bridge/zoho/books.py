"""Zoho Books v3 calls: paged entity lists for reconciliation, and an org check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.zoho.connection import Connection
from bridge.zoho.paging import MAX_PER_PAGE, books_has_more
from bridge.zoho.transport import ZohoTransport, json_or_none, raise_for_status


class BooksApi:
    """The Books calls the bridge makes, over a `ZohoTransport`."""

    def __init__(self, client: ZohoTransport) -> None:
        self._client = client

    async def list_pages(
        self,
        connection: Connection,
        entity_path: str,
        last_modified_time: datetime | None = None,
        *,
        extra: Mapping[str, str] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of `entity_path` (`invoices`, `contacts`, `customerpayments`, ...).

        The list sits under the key named like the path; pages continue while
        `page_context.has_more_page` (zoho.md §4.1).
        """
        page = 1
        while True:
            params = {"page": str(page), "per_page": str(MAX_PER_PAGE), **(extra or {})}
            if last_modified_time is not None:
                params["last_modified_time"] = books_time(last_modified_time)
            response = await self._client.request(
                connection, "books", "GET", f"/books/v3/{entity_path}", params=params
            )
            raise_for_status(response)
            body = json_or_none(response)
            if not isinstance(body, dict):
                return
            rows = list(body.get(entity_path) or [])
            if rows:
                yield rows
            if not books_has_more(body):
                return
            page += 1

    async def organizations(self, connection: Connection) -> list[dict[str, Any]]:
        """`GET /books/v3/organizations`: a cheap call proving the token and host work."""
        response = await self._client.request(connection, "books", "GET", "/books/v3/organizations")
        raise_for_status(response)
        body = json_or_none(response)
        orgs = body.get("organizations") if isinstance(body, dict) else None
        return [dict(o) for o in orgs] if isinstance(orgs, list) else []


def books_time(when: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC, as Pipedream's invoice poller sends it (zoho.md §4.1,
    UNCERTAIN whether Books reads it as "at or after")."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.replace(microsecond=0).isoformat()
