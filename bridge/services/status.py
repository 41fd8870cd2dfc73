"""The status overview (`/admin/status`, `zoho-bridge status`) and readiness (`/readyz`):
one section per concern, and the problems an operator must act on.

Everything here is read from the database, or checked now, so the server and a one-shot
CLI process say the same; outages come first in `problems`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import BridgeError
from bridge.services.deliveries import DeliveryService
from bridge.services.health import (
    HealthMonitor,
    database_problem,
    reauth_problem,
    sink_problem,
)
from bridge.services.managed_channels import ManagedChannelService
from bridge.services.schema import schema_state
from bridge.services.views import iso, status_view
from bridge.services.watches import WatchService
from bridge.store import relay_rates
from bridge.store.health import WriteCheck
from bridge.store.outbox_queries import SinkDown
from bridge.store.relay_rates import SinkRate


def _read(outcome: Any) -> Any:
    """A value `asyncio.gather(..., return_exceptions=True)` gave, or its error raised."""
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _no_problems() -> list[str]:
    return []


def _database_view(check: WriteCheck) -> dict[str, Any]:
    return {"state": check.state, "detail": check.detail,
            "disk_free_bytes": check.disk_free_bytes}  # fmt: skip


def _unreadable_view(check: WriteCheck, problem: str) -> dict[str, Any]:
    """The overview's shape when nothing can be read: only the database's problem."""
    return {
        "database": _database_view(check),
        "sinks": [],
        "events": {"count": None, "last_seq": None, "last_received_at": None},
        "subscriptions": [],
        "connections": {"needs_reauth": []},
        "channels": {"managed": None, "at_risk": []},
        "reconciliation": {"problems": []},
        "problems": [problem],
    }


def _no_rates() -> dict[str, float]:
    return {}


def _no_relay(sink: str, pending: int) -> str:
    return (
        f"sink {sink}: no relay is running, {pending} deliveries wait "
        "(BRIDGE_RELAY=false and no `zoho-bridge relay` process?)"
    )


@dataclass
class StatusService:
    """Assembles what each service reports. `relay_problems` is this process's relay's
    outages not yet recorded in the database (none in a one-shot CLI process);
    `secret_problem` says why stored secrets cannot be opened, if they cannot. A sink
    outage no relay has confirmed for `sink_stale_after` is marked as such."""

    engine: AsyncEngine
    database_url: str
    deliveries: DeliveryService
    managed_channels: ManagedChannelService
    watches: WatchService
    health: HealthMonitor
    secret_problem: str | None = None
    relay_problems: Callable[[], list[str]] = field(default=_no_problems)
    sink_stale_after: timedelta = timedelta(seconds=60)
    # Events/s each push sink confirmed over the last minute, by this process's relay
    # (none in a one-shot CLI process), first hand; `relay_name` is that relay's name in
    # `relay_rates`, where every other running relay's rates are read.
    relay_rates: Callable[[], dict[str, float]] = field(default=_no_rates)
    relay_name: str | None = None
    # A relay's reported rates count while they are this recent (it reports every 5 s).
    rates_fresh_for: timedelta = timedelta(seconds=30)

    async def overview(self) -> dict[str, Any]:
        check = await self.health.database()
        if check.state == "unreachable":
            return _unreadable_view(check, database_problem(check) or check.detail)
        # Independent reads, run at once: on PostgreSQL each is a round trip, on SQLite a
        # hop to a connection's thread; one after the other they added up to tens of ms.
        reads = await asyncio.gather(
            self.deliveries.status(),
            self.health.sinks_down(),
            self.health.connections_needing_reauth(),
            self.managed_channels.problems(),
            self.watches.problems(),
            relay_rates.recent(self.engine, self.health.clock() - self.rates_fresh_for,
                               besides=self.relay_name),
            return_exceptions=True,
        )  # fmt: skip
        if isinstance(reads[0], BridgeError):
            check = await self.health.check_database()
            return _unreadable_view(check, database_problem(check) or "the database failed")
        found, down, reauth, channels, watches, reported = (_read(r) for r in reads)
        view = status_view(found)
        outages = [p for p in [database_problem(check)] if p is not None]
        view["database"] = _database_view(check)
        now = self.health.clock()
        idle: list[str] = []
        for sink in view["sinks"]:
            outage = down.get(sink["name"])
            sink["state"] = "disabled" if sink["disabled"] else "unreachable" if outage else "ok"
            sink["unreachable_since"] = iso(outage.since) if outage else None
            sink["unreachable_reason"] = outage.reason if outage else None
            rate = self._rate(sink["name"], reported)
            sink["relays"] = rate.relays
            sink["publish_rate_per_second"] = round(rate.per_second, 3) if rate.relays else None
            if not rate.relays and sink["pending"] and not sink["disabled"]:
                idle.append(_no_relay(sink["name"], sink["pending"]))
        outages.extend(sink_problem(d, now, self.sink_stale_after) for d in down.values())
        outages.extend(self._unrecorded(down))
        view["connections"] = {"needs_reauth": [c.name for c in reauth]}
        outages.extend(reauth_problem(c) for c in reauth)
        view["problems"][:0] = outages + idle
        view["channels"] = channels
        view["problems"].extend(
            f"channel {c['channel_id']} is {c['state']}, expires {c['expires_at']}"
            + (f": {c['last_error']}" if c.get("last_error") else "")
            for c in channels["at_risk"]
        )
        view["reconciliation"] = {"problems": watches}
        view["problems"].extend(watches)
        return view

    def _rate(self, name: str, reported: dict[str, SinkRate]) -> SinkRate:
        """The sink's publish rate over this process's relay and every other that
        reported lately; `relays` 0 when none did."""
        own = self.relay_rates().get(name)
        other = reported.get(name, SinkRate(0.0, 0))
        if own is None:
            return other
        return SinkRate(own + other.per_second, other.relays + 1)

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether this bridge can store deliveries now, and each check's outcome.

        It fails when the database cannot be reached, its schema is not current, it does
        not take writes (full), or the secret key is wrong; sinks, connections, channels
        and reconciliation are reported but never fail it: deliveries are still stored."""
        checks: dict[str, str] = {}
        try:
            checks["schema"] = await schema_state(self.engine, self.database_url)
            checks["database"] = "ok"
        except BridgeError as exc:
            checks["database"] = exc.message
        except Exception as exc:  # readiness must answer, whatever the database says
            checks["database"] = f"unreachable ({type(exc).__name__})"
        if checks["database"] == "ok":
            written = await self.health.database()
            if written.state != "ok":
                free = (
                    "" if written.disk_free_bytes is None
                    else f", {written.disk_free_bytes} bytes free"
                )  # fmt: skip
                checks["database"] = f"{written.state}: {written.detail}{free}"
        checks["secret_key"] = self.secret_problem or "ok"
        if checks["database"] == "ok" and checks.get("schema") == "current":
            checks["sinks"] = await self._sink_detail()
            checks["connections"] = await self._connection_detail()
            checks["channels"] = await self._channel_detail()
            checks["reconciliation"] = await self._reconciliation_detail()
        ready = (
            checks["database"] == "ok"
            and checks.get("schema") == "current"
            and checks["secret_key"] == "ok"
        )
        return ready, checks

    async def _sink_detail(self) -> str:
        """Push sinks a relay cannot reach (their deliveries wait in the outbox)."""
        try:
            down = await self.health.sinks_down()
        except BridgeError as exc:
            return f"unknown ({exc.message})"
        found = [f"{d.sink} {d.reason} (since {iso(d.since)})" for d in down.values()]
        found.extend(self._unrecorded(down))
        return "ok" if not found else "; ".join(found)

    def _unrecorded(self, down: dict[str, SinkDown]) -> list[str]:
        """This relay's outages the database does not show yet (one it has just recorded
        is in `down` already: said once, in the recorded words)."""
        return [p for p in self.relay_problems()
                if not any(p.startswith(f"sink {name} ") for name in down)]  # fmt: skip

    async def _connection_detail(self) -> str:
        try:
            reauth = await self.health.connections_needing_reauth()
        except BridgeError as exc:
            return f"unknown ({exc.message})"
        if not reauth:
            return "ok"
        return f"{len(reauth)} needs_reauth: " + "; ".join(
            f"{c.name} (run `zoho-bridge connections update {c.name} --refresh-token <token>`)"
            for c in reauth
        )

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
