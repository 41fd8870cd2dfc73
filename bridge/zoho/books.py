"""Zoho Books v3 calls: entity lists by strategy, single records, failed workflow actions,
and an org check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Literal

from bridge.domain.books_entities import books_entity
from bridge.zoho.connection import Connection
from bridge.zoho.meter import CallMeter
from bridge.zoho.pages import BooksPage
from bridge.zoho.paging import MAX_PER_PAGE, books_has_more
from bridge.zoho.shares import Purpose
from bridge.zoho.times import books_time, parse_http_date
from bridge.zoho.transport import ZohoTransport, json_or_none, raise_for_status

# How to find recent changes of an entity, probed per entity at setup because the sources
# disagree on what each supports (reconciliation.md B1-B4, e #10):
# filter: `last_modified_time=<cursor>`, if it means "at or after" for this entity;
# sorted: `sort_column=last_modified_time&sort_order=D`, walked down to the checkpoint;
# scan:   the whole list, ordered by creation (Books' default).
BooksStrategy = Literal["filter", "sorted", "scan"]

# UNCERTAIN: zoho.com/books/api/v3/workflows lists "List failed workflow actions"
# (zoho.md §3.4) but neither its path nor its answer's shape could be read. Workflow
# endpoints live under /settings/workflows (CONFIRMED for create/list); this path and the
# `failed_actions` list key are guesses, kept in sync with bridge/sandbox/books_routes.py.
FAILED_ACTIONS_PATH = "/books/v3/settings/workflows/failedactions"
FAILED_ACTIONS_KEY = "failed_actions"


def strategy_params(strategy: BooksStrategy, since: datetime | None) -> dict[str, str]:
    """The query parameters (besides paging) of one strategy."""
    if strategy == "filter":
        if since is None:
            raise ValueError("the `filter` strategy needs `since`")
        return {"last_modified_time": books_time(since)}
    if strategy == "sorted":
        return {"sort_column": "last_modified_time", "sort_order": "D"}
    if strategy == "scan":
        return {}
    raise ValueError(f"unknown Books strategy {strategy!r}")


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
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The non-empty pages of `entity_path` (`invoices`, `customerpayments`, ...)."""
        params = dict(extra or {})
        if last_modified_time is not None:
            params["last_modified_time"] = books_time(last_modified_time)
        async for page in self._walk(
            connection, f"/books/v3/{entity_path}", entity_path, params, purpose, meter
        ):
            if page.rows:
                yield page.rows

    async def strategy_pages(
        self,
        connection: Connection,
        entity_path: str,
        strategy: BooksStrategy,
        *,
        since: datetime | None = None,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[BooksPage]:
        """Every page of `entity_path` listed the `strategy` way, empty ones included
        (each carries Zoho's `Date`); for `sorted`, break out at the checkpoint."""
        params = strategy_params(strategy, since)
        path = f"/books/v3/{entity_path}"
        async for page in self._walk(connection, path, entity_path, params, purpose, meter):
            yield page

    async def _walk(
        self,
        connection: Connection,
        path: str,
        list_key: str,
        params: Mapping[str, str],
        purpose: Purpose,
        meter: CallMeter | None,
    ) -> AsyncIterator[BooksPage]:
        """Pages while `page_context.has_more_page` (zoho.md §4.1); rows sit under the key
        named like the path."""
        page = 1
        while True:
            response = await self._client.request(
                connection,
                "books",
                "GET",
                path,
                params={**params, "page": str(page), "per_page": str(MAX_PER_PAGE)},
                purpose=purpose,
                meter=meter,
            )
            raise_for_status(response)
            body = json_or_none(response)
            rows = list(body.get(list_key) or []) if isinstance(body, dict) else []
            more = isinstance(body, dict) and books_has_more(body)
            yield BooksPage(
                rows,
                response.status_code,
                parse_http_date(response.headers.get("date")),
                page,
                more,
                self._client.rate_limit(connection),
            )
            if not more:
                return
            page += 1

    async def get(
        self,
        connection: Connection,
        entity_path: str,
        record_id: str,
        *,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> dict[str, Any] | None:
        """`GET /books/v3/{path}/{id}`: the whole record, as webhooks carry it (list rows
        do not); None when Books answers 404 (UNCERTAIN: the "no such record" answer)."""
        entity = books_entity(entity_path)
        if entity is None:
            raise ValueError(f"unknown Books entity {entity_path!r}")
        response = await self._client.request(
            connection,
            "books",
            "GET",
            f"/books/v3/{entity.path}/{record_id}",
            purpose=purpose,
            meter=meter,
        )
        if response.status_code == 404:
            return None
        raise_for_status(response)
        body = json_or_none(response)
        # The record sits under the entity's singular key, as in webhooks (zoho.md §3.2).
        record = body.get(entity.key) if isinstance(body, dict) else None
        return dict(record) if isinstance(record, dict) else None

    async def failed_actions(
        self,
        connection: Connection,
        *,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[BooksPage]:
        """Pages of "List failed workflow actions": webhook deliveries Books knows failed,
        a cheap extra signal for reconciliation (zoho.md §3.4; path UNCERTAIN, above)."""
        async for page in self._walk(
            connection, FAILED_ACTIONS_PATH, FAILED_ACTIONS_KEY, {}, purpose, meter
        ):
            yield page

    async def organizations(
        self, connection: Connection, *, purpose: Purpose = "check"
    ) -> list[dict[str, Any]]:
        """`GET /books/v3/organizations`: a cheap call proving the token and host work."""
        response = await self._client.request(
            connection, "books", "GET", "/books/v3/organizations", purpose=purpose
        )
        raise_for_status(response)
        body = json_or_none(response)
        orgs = body.get("organizations") if isinstance(body, dict) else None
        return [dict(o) for o in orgs] if isinstance(orgs, list) else []


__all__ = ["BooksApi", "BooksStrategy", "books_time", "strategy_params"]
