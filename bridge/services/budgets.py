"""What is left of each connection's Zoho budgets: the whole of them, and reconciliation's
shares (status, dashboard)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import SecretKeyError
from bridge.secretbox import SecretBox
from bridge.services import connections
from bridge.store.connections import list_connections
from bridge.zoho.client import ZohoClient


@dataclass
class BudgetService:
    engine: AsyncEngine
    box: SecretBox
    zoho: ZohoClient

    async def views(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """Per connection (all, or those named): calls and credits left now; reconcile_*
        are what is left of reconciliation's daily shares. Counted in the database across
        replicas; nothing is sent to Zoho."""
        found = []
        for info in await list_connections(self.engine):
            if names is not None and info.name not in names:
                continue
            try:
                left = await self.zoho.budget_left(connections.to_zoho(info, self.box))
            except SecretKeyError:
                continue  # readiness reports the key; nothing to count without it
            found.append({"connection": info.name, **asdict(left)})
        return found
