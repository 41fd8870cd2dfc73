"""Outages that must be loud: the database not taking writes, Zoho connections needing a new
consent, push sinks a relay cannot reach.

`HealthMonitor` checks the first two every `interval` seconds in `serve` (the relay
watches the sinks as it publishes), sets `bridge_database_up` and
`bridge_connection_needs_reauth`, and logs a warning when a state changes, not on every
check. The status overview and readiness ask it too, so a one-shot CLI process (which
runs no monitor loop) checks at once, silently, and says the same as the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.states import ConnectionStatus
from bridge.errors import BridgeError
from bridge.metrics import CONNECTION_NEEDS_REAUTH, DATABASE_UP
from bridge.store.connections import ConnectionInfo, list_connections
from bridge.store.health import WriteCheck, check_write
from bridge.store.outbox_queries import SinkDown, sinks_down

log = structlog.get_logger(__name__)

# A check that hangs (a database that accepts connections and never answers) counts as
# a failed one after this long.
CHECK_TIMEOUT = 10.0


def database_problem(check: WriteCheck) -> str | None:
    """The database's state in plain words, or None when it takes writes."""
    if check.state == "ok":
        return None
    if check.state == "full":
        free = "" if check.disk_free_bytes is None else f", {check.disk_free_bytes} bytes free"
        return (
            f"the database is full ({check.detail}{free}): webhooks are answered 503 and "
            "nothing new is stored; free disk space (or grow the volume), the bridge "
            "resumes by itself"
        )
    if check.state == "read_only":
        return (
            f"the database refuses writes ({check.detail}): webhooks are answered 503 and "
            "nothing new is stored"
        )
    return (
        f"the database cannot be reached ({check.detail}): webhooks are answered 503 and "
        "nothing new is stored"
    )


def reauth_problem(info: ConnectionInfo) -> str:
    """What an operator reads, and the command to run, for a `needs_reauth` connection."""
    why = f" ({info.last_error})" if info.last_error else ""
    return (
        f"connection {info.name} is needs_reauth: Zoho refused its refresh token{why}; its "
        "channels are paused and it is not reconciled. Make a new refresh token (a new "
        f"consent, see docs/connections.md) and run `zoho-bridge connections update "
        f"{info.name} --refresh-token <token>`"
    )


def sink_problem(down: SinkDown, now: datetime, stale_after: timedelta) -> str:
    since = down.since.strftime("%Y-%m-%d %H:%M:%SZ")
    text = (
        f"sink {down.sink} {down.reason} (since {since}); its deliveries wait in the outbox "
        "and go out as soon as it is back"
    )
    if now - down.checked_at > stale_after:
        checked = down.checked_at.strftime("%Y-%m-%d %H:%M:%SZ")
        text += f" (last checked {checked} by {down.checked_by}: is a relay running?)"
    return text


@dataclass
class HealthMonitor:
    """The database write check and connection states, checked on an interval in `serve`
    and on demand elsewhere; warns once per change of state."""

    engine: AsyncEngine
    database_url: str
    clock: Callable[[], datetime]
    replica: str
    interval: float = 5.0
    last: WriteCheck | None = field(default=None, init=False)
    last_at: datetime | None = field(default=None, init=False)
    needs_reauth: set[str] | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def database(self) -> WriteCheck:
        """The monitor's last check if it is recent (in `serve`), else a check now (which
        neither logs nor moves the metric: that is the monitor loop's)."""
        if (
            self.last is not None
            and self.last_at is not None
            and self.clock() - self.last_at <= timedelta(seconds=2 * self.interval)
        ):
            return self.last
        return await self.check_database()

    async def connections_needing_reauth(self) -> list[ConnectionInfo]:
        """Connections whose refresh token Zoho refused."""
        return [
            c for c in await list_connections(self.engine)
            if c.status is ConnectionStatus.NEEDS_REAUTH
        ]  # fmt: skip

    async def check_database(self) -> WriteCheck:
        """Check now, silently."""
        try:
            return await asyncio.wait_for(
                check_write(self.engine, self.database_url, now=self.clock(),
                            replica=self.replica),
                CHECK_TIMEOUT,
            )  # fmt: skip
        except TimeoutError:
            return WriteCheck("unreachable", f"no answer within {CHECK_TIMEOUT:g} s")

    async def watch_database(self) -> WriteCheck:
        """Check now, set `bridge_database_up`, and warn if the state changed."""
        now = self.clock()
        found = await self.check_database()
        DATABASE_UP.set(1 if found.state == "ok" else 0)
        before = self.last.state if self.last is not None else "ok"
        if found.state != before:
            if found.state == "ok":
                log.warning("the database takes writes again")
            else:
                log.warning("the database cannot store deliveries", state=found.state,
                            detail=found.detail)  # fmt: skip
        self.last, self.last_at = found, now
        return found

    async def watch_connections(self) -> None:
        """Set `bridge_connection_needs_reauth` and warn for each connection whose state
        changed."""
        names = {c.name for c in await self.connections_needing_reauth()}
        before = self.needs_reauth or set()
        for name in names - before:
            fix = f"zoho-bridge connections update {name} --refresh-token <token>"
            log.warning("connection needs re-authorisation", connection=name, fix=fix)
            CONNECTION_NEEDS_REAUTH.labels(name).set(1)
        for name in before - names:
            log.warning("connection re-authorised", connection=name)
            CONNECTION_NEEDS_REAUTH.labels(name).set(0)
        self.needs_reauth = names

    async def sinks_down(self) -> dict[str, SinkDown]:
        return await sinks_down(self.engine)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="health-monitor")

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                if (await self.watch_database()).state == "ok":
                    await self.watch_connections()
            except BridgeError:
                pass  # the database check has said it; connections wait for the next turn
            except Exception as exc:  # a bug must not end the checks for good
                log.error("health check error", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval)
