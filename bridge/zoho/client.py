"""`ZohoClient`: the one object the bridge uses to call Zoho CRM and Books."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bridge.zoho.books import BooksApi, BooksStrategy
from bridge.zoho.budget import Budget, BudgetLeft
from bridge.zoho.connection import Connection
from bridge.zoho.coql import MAX_COQL_LIMIT, CoqlKey
from bridge.zoho.crm import CrmApi
from bridge.zoho.meter import CallMeter
from bridge.zoho.oauth import TokenManager
from bridge.zoho.pages import BooksPage, CoqlPage, CrmPage
from bridge.zoho.ratelimit import BooksRateLimit
from bridge.zoho.retry import RetryPolicy
from bridge.zoho.shares import Purpose
from bridge.zoho.transport import DEFAULT_RETRY, ZohoTransport
from bridge.zoho.watch import WatchSpec


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What `ZohoClient.check` found: the CRM org and/or the Books organizations."""

    crm_org: dict[str, Any] | None = None
    books_organizations: list[dict[str, Any]] = field(default_factory=list)


class ZohoClient:
    """Calls Zoho for any connection: authorised, budgeted, retried, paginated.

    Every call takes `purpose` (which budget shares it spends: channel calls default to
    `renewal`, the reconciliation reads to `reconcile`, the rest to `check`) and the
    reconciliation reads take an optional `meter` counting what they cost.

    Errors: `ZohoAuthError` (connection needs re-consent), `ZohoTransientError` (retries
    ran out), `BudgetExhausted` (with `retry_after`), `ZohoApiError`, and
    `ZohoPartialFailure` for watch calls where some items failed.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenManager,
        budget: Budget,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.transport = ZohoTransport(http, tokens, budget, retry=retry, sleep=sleep, rng=rng)
        self.budget = budget
        self._crm = CrmApi(self.transport)
        self._books = BooksApi(self.transport)

    async def crm_watch_enable(
        self, connection: Connection, specs: Sequence[WatchSpec], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """Enable (POST) channels; Zoho's success items."""
        return await self._crm.watch_enable(connection, specs, purpose=purpose)

    async def crm_watch_update(
        self, connection: Connection, specs: Sequence[WatchSpec], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """Replace (PUT) channels' details."""
        return await self._crm.watch_update(connection, specs, purpose=purpose)

    async def crm_watch_patch(
        self, connection: Connection, specs: Sequence[WatchSpec], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """Change (PATCH) the given details of channels, e.g. their expiry."""
        return await self._crm.watch_patch(connection, specs, purpose=purpose)

    async def crm_watch_remove_events(
        self,
        connection: Connection,
        channel_id: str,
        events: Sequence[str],
        *,
        purpose: Purpose = "renewal",
    ) -> list[dict[str, Any]]:
        """Stop some events of a channel (PATCH with `_delete_events`)."""
        return await self._crm.watch_remove_events(connection, channel_id, events, purpose=purpose)

    async def crm_watch_get(
        self,
        connection: Connection,
        *,
        channel_id: str | None = None,
        module: str | None = None,
        purpose: Purpose = "renewal",
    ) -> list[dict[str, Any]]:
        """The channels Zoho knows; empty when it answers 204."""
        return await self._crm.watch_get(
            connection, channel_id=channel_id, module=module, purpose=purpose
        )

    async def crm_watch_disable(
        self, connection: Connection, channel_ids: Sequence[str], *, purpose: Purpose = "renewal"
    ) -> list[dict[str, Any]]:
        """Disable (DELETE) whole channels."""
        return await self._crm.watch_disable(connection, channel_ids, purpose=purpose)

    def crm_versions(
        self,
        connection: Connection,
        module: str,
        *,
        since: datetime | None = None,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[CrmPage]:
        """Pages of `(id, Modified_Time, Created_Time)` newest first, each with Zoho's
        `Date`; break out at your checkpoint. `since` makes an idle module one 304/204."""
        return self._crm.records.versions(
            connection, module, since=since, purpose=purpose, meter=meter
        )

    async def crm_get_records(
        self,
        connection: Connection,
        module: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str] | None = None,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> list[dict[str, Any]]:
        """Full records by id (`?ids=`, 100 per call): the unannounced versions' bodies."""
        return await self._crm.records.by_ids(
            connection, module, ids, fields=fields, purpose=purpose, meter=meter
        )

    async def crm_coql_versions(
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
        """One COQL keyset page of versions, oldest first (large catch-ups): `since` for
        the first page, then `after=CoqlKey.of(rows[-1])` while `more_records`."""
        return await self._crm.records.coql_versions(
            connection,
            module,
            since=since,
            after=after,
            until=until,
            limit=limit,
            purpose=purpose,
            meter=meter,
        )

    def crm_deleted_pages(
        self,
        connection: Connection,
        module: str,
        since: datetime | None = None,
        *,
        kind: str = "all",
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[CrmPage]:
        """Pages of deleted records, each with Zoho's `Date` (304/204: one empty page)."""
        return self._crm.records.deleted(
            connection, module, since, kind=kind, purpose=purpose, meter=meter
        )

    def crm_list_records(
        self,
        connection: Connection,
        module: str,
        fields: Sequence[str],
        modified_since: datetime | None = None,
        *,
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of records modified after `modified_since`, oldest first."""
        return self._crm.list_records(
            connection, module, fields, modified_since, purpose=purpose, meter=meter
        )

    async def crm_coql(
        self,
        connection: Connection,
        select_query: str,
        *,
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> CoqlPage:
        """One COQL query (at most 2,000 rows); costs 1 to 3 credits by its LIMIT."""
        return await self._crm.coql(connection, select_query, purpose=purpose, meter=meter)

    def crm_list_deleted(
        self,
        connection: Connection,
        module: str,
        modified_since: datetime | None = None,
        *,
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of records deleted after `modified_since` (rows only; see
        `crm_deleted_pages` for the `Date` header)."""
        return self._crm.list_deleted(
            connection, module, modified_since, purpose=purpose, meter=meter
        )

    def books_pages(
        self,
        connection: Connection,
        entity_path: str,
        strategy: BooksStrategy,
        *,
        since: datetime | None = None,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[BooksPage]:
        """Pages of a Books list by strategy (`filter`, `sorted`, `scan`)."""
        return self._books.strategy_pages(
            connection, entity_path, strategy, since=since, purpose=purpose, meter=meter
        )

    async def books_get(
        self,
        connection: Connection,
        entity_path: str,
        record_id: str,
        *,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> dict[str, Any] | None:
        """One whole Books record (`GET /books/v3/{path}/{id}`); None if Books has none."""
        return await self._books.get(
            connection, entity_path, record_id, purpose=purpose, meter=meter
        )

    def books_failed_actions(
        self,
        connection: Connection,
        *,
        purpose: Purpose = "reconcile",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[BooksPage]:
        """Pages of Books' failed workflow actions (path UNCERTAIN, see `books.py`)."""
        return self._books.failed_actions(connection, purpose=purpose, meter=meter)

    def books_list(
        self,
        connection: Connection,
        entity_path: str,
        last_modified_time: datetime | None = None,
        *,
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a Books list (`invoices`, `contacts`, `customerpayments`, ...)."""
        return self._books.list_pages(
            connection, entity_path, last_modified_time, purpose=purpose, meter=meter
        )

    def books_rate_limit(self, connection: Connection) -> BooksRateLimit | None:
        """The latest `X-Rate-Limit-*` values Books sent for `connection` (this process)."""
        return self.budget.books_rate_limit(connection)

    async def check(
        self, connection: Connection, *, crm: bool = True, purpose: Purpose = "check"
    ) -> CheckResult:
        """Cheap calls proving the connection works: CRM `/org` (unless `crm=False`) and,
        when the connection has a Books organization, Books `/organizations`."""
        crm_org = await self._crm.org(connection, purpose=purpose) if crm else None
        books = (
            await self._books.organizations(connection, purpose=purpose)
            if connection.organization_id
            else []
        )
        return CheckResult(crm_org=crm_org, books_organizations=books)

    async def budget_left(self, connection: Connection) -> BudgetLeft:
        """What is left of the connection's Zoho budgets."""
        return await self.budget.left(connection)
