"""`ZohoClient`: the one object the bridge uses to call Zoho CRM and Books."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bridge.zoho.books import BooksApi
from bridge.zoho.budget import Budget, BudgetLeft
from bridge.zoho.connection import Connection
from bridge.zoho.crm import CoqlPage, CrmApi
from bridge.zoho.oauth import TokenManager
from bridge.zoho.retry import RetryPolicy
from bridge.zoho.transport import DEFAULT_RETRY, ZohoTransport
from bridge.zoho.watch import WatchSpec


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What `ZohoClient.check` found: the CRM org and/or the Books organizations."""

    crm_org: dict[str, Any] | None = None
    books_organizations: list[dict[str, Any]] = field(default_factory=list)


class ZohoClient:
    """Calls Zoho for any connection: authorised, budgeted, retried, paginated.

    Errors: `ZohoAuthError` (connection needs re-consent), `ZohoTransientError` (retries
    ran out), `BudgetExhausted`, `ZohoApiError`, and `ZohoPartialFailure` for watch calls
    where some items failed.
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
        self, connection: Connection, specs: Sequence[WatchSpec]
    ) -> list[dict[str, Any]]:
        """Enable (POST) channels; Zoho's success items."""
        return await self._crm.watch_enable(connection, specs)

    async def crm_watch_update(
        self, connection: Connection, specs: Sequence[WatchSpec]
    ) -> list[dict[str, Any]]:
        """Replace (PUT) channels' details."""
        return await self._crm.watch_update(connection, specs)

    async def crm_watch_patch(
        self, connection: Connection, specs: Sequence[WatchSpec]
    ) -> list[dict[str, Any]]:
        """Change (PATCH) the given details of channels, e.g. their expiry."""
        return await self._crm.watch_patch(connection, specs)

    async def crm_watch_remove_events(
        self, connection: Connection, channel_id: str, events: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Stop some events of a channel (PATCH with `_delete_events`)."""
        return await self._crm.watch_remove_events(connection, channel_id, events)

    async def crm_watch_get(
        self, connection: Connection, *, channel_id: str | None = None, module: str | None = None
    ) -> list[dict[str, Any]]:
        """The channels Zoho knows; empty when it answers 204."""
        return await self._crm.watch_get(connection, channel_id=channel_id, module=module)

    async def crm_watch_disable(
        self, connection: Connection, channel_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Disable (DELETE) whole channels."""
        return await self._crm.watch_disable(connection, channel_ids)

    def crm_list_records(
        self,
        connection: Connection,
        module: str,
        fields: Sequence[str],
        modified_since: datetime | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of records modified after `modified_since`, oldest first."""
        return self._crm.list_records(connection, module, fields, modified_since)

    async def crm_coql(self, connection: Connection, select_query: str) -> CoqlPage:
        """One COQL query (at most 2,000 rows); costs 1 to 3 credits by its LIMIT."""
        return await self._crm.coql(connection, select_query)

    def crm_list_deleted(
        self, connection: Connection, module: str, modified_since: datetime | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of records deleted after `modified_since`."""
        return self._crm.list_deleted(connection, module, modified_since)

    def books_list(
        self,
        connection: Connection,
        entity_path: str,
        last_modified_time: datetime | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a Books list (`invoices`, `contacts`, `customerpayments`, ...)."""
        return self._books.list_pages(connection, entity_path, last_modified_time)

    async def check(self, connection: Connection, *, crm: bool = True) -> CheckResult:
        """Cheap calls proving the connection works: CRM `/org` (unless `crm=False`) and,
        when the connection has a Books organization, Books `/organizations`."""
        crm_org = await self._crm.org(connection) if crm else None
        books = await self._books.organizations(connection) if connection.organization_id else []
        return CheckResult(crm_org=crm_org, books_organizations=books)

    async def budget_left(self, connection: Connection) -> BudgetLeft:
        """What is left of the connection's Zoho budgets."""
        return await self.budget.left(connection)
