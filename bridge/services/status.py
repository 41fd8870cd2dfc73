"""The status overview (`/admin/status`, `zoho-bridge status`) and readiness (`/readyz`):
one section per concern, and the problems an operator must act on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import BridgeError
from bridge.services.deliveries import DeliveryService
from bridge.services.managed_channels import ManagedChannelService
from bridge.services.schema import schema_state
from bridge.services.views import status_view
from bridge.services.watches import WatchService


def _no_problems() -> list[str]:
    return []


@dataclass
class StatusService:
    """Assembles what each service reports. `relay_problems` is this process's relay's
    (none in a one-shot CLI process); `secret_problem` says why stored secrets cannot be
    opened, if they cannot."""

    engine: AsyncEngine
    database_url: str
    deliveries: DeliveryService
    managed_channels: ManagedChannelService
    watches: WatchService
    secret_problem: str | None = None
    relay_problems: Callable[[], list[str]] = field(default=_no_problems)

    async def overview(self) -> dict[str, Any]:
        found = await self.deliveries.status()
        found.problems.extend(self.relay_problems())
        view = status_view(found)
        channels = await self.managed_channels.problems()
        view["channels"] = channels
        view["problems"].extend(
            f"channel {c['channel_id']} is {c['state']}, expires {c['expires_at']}"
            + (f": {c['last_error']}" if c.get("last_error") else "")
            for c in channels["at_risk"]
        )
        watches = await self.watches.problems()
        view["reconciliation"] = {"problems": watches}
        view["problems"].extend(watches)
        return view

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether this bridge can store deliveries now, and each check's outcome."""
        checks: dict[str, str] = {}
        try:
            checks["schema"] = await schema_state(self.engine, self.database_url)
            checks["database"] = "ok"
        except BridgeError as exc:
            checks["database"] = exc.message
        except Exception as exc:  # readiness must answer, whatever the database says
            checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["secret_key"] = self.secret_problem or "ok"
        if checks.get("database") == "ok" and checks.get("schema") == "current":
            checks["channels"] = await self._channel_detail()
            checks["reconciliation"] = await self._reconciliation_detail()
        ready = (
            checks.get("database") == "ok"
            and checks.get("schema") == "current"
            and checks["secret_key"] == "ok"
        )
        return ready, checks

    async def _reconciliation_detail(self) -> str:
        """Watches lagging or failing; never makes readiness fail (deliveries are still
        received and stored)."""
        try:
            problems = await self.watches.problems()
        except BridgeError as exc:
            return f"unknown ({exc.message})"
        return "ok" if not problems else f"{len(problems)} watch(es): " + "; ".join(problems)

    async def _channel_detail(self) -> str:
        """Channels at risk, for the operator reading readiness; never makes it fail: the
        bridge still receives and stores whatever arrives."""
        try:
            problems = await self.managed_channels.problems()
        except BridgeError as exc:
            return f"unknown ({exc.message})"
        at_risk = problems["at_risk"]
        if not at_risk:
            return "ok"
        ids = ", ".join(f"{v['channel_id']} ({v['state']})" for v in at_risk)
        return f"{len(at_risk)} at risk: {ids}"
