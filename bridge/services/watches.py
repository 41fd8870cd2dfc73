"""Reconciliation watches as operators manage them: add, pause, resume, remove, change;
the automatic ones (every module a managed channel watches); and their status views."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.books_entities import BOOKS_ENTITIES, books_entity
from bridge.domain.events import Product
from bridge.domain.reconcile_books_strategy import ListingStrategy
from bridge.domain.reconcile_schedule import health
from bridge.domain.states import ChannelStatus, WatchStatus
from bridge.errors import InvalidInput, NotFound
from bridge.services.connections import load as load_connection
from bridge.services.reconciler import ReconcilePolicy
from bridge.services.views import iso
from bridge.store import managed_channels as channel_store
from bridge.store import watches as store
from bridge.store.watches import WatchInfo

_CRM_MODULE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 7 * 86400
OPTIONS = {"full_records": bool, "sources": list, "sweep": bool}


def _product(value: str) -> Product:
    try:
        return Product(value)
    except ValueError:
        raise InvalidInput("product must be crm or books") from None


def module_of(product: Product, module: str) -> str:
    """The module as events name it: a CRM API name, or the Books webhook entity key
    (`invoices` and `invoice` both give `invoice`)."""
    if product is Product.CRM:
        if not _CRM_MODULE.fullmatch(module):
            raise InvalidInput("a CRM module is its API name, e.g. Leads or Sales_Orders")
        return module
    entity = books_entity(module)
    if entity is None:
        names = ", ".join(e.path for e in BOOKS_ENTITIES)
        raise InvalidInput(f"unknown Books entity {module!r}; one of {names}")
    return entity.key


def module_names(module: str) -> set[str]:
    """A module as an operator may name it in a filter, and as each product stores it
    (`invoices` finds the Books watch on `invoice`)."""
    names = {module}
    for product in Product:
        with contextlib.suppress(InvalidInput):
            names.add(module_of(product, module))
    return names


def _interval(seconds: int | None) -> None:
    if seconds is not None and not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise InvalidInput(
            f"the interval must be from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS} seconds"
        )


def _options(raw: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(raw or {})
    for name, value in options.items():
        kind = OPTIONS.get(name)
        if kind is None:
            raise InvalidInput(f"unknown option {name!r}; known: {', '.join(OPTIONS)}")
        if not isinstance(value, kind):
            raise InvalidInput(f"option {name} must be a {kind.__name__}")
    return options


@dataclass
class WatchService:
    """Reconciliation watches. A new watch starts its cursor when it is created: history
    is emitted only by a backfill (`RunService`)."""

    engine: AsyncEngine
    clock: Callable[[], datetime]
    policy: ReconcilePolicy
    automatic: bool = True

    async def add(
        self,
        connection: str,
        product: str,
        module: str,
        *,
        interval_seconds: int | None = None,
        strategy: str | None = None,
        options: dict[str, Any] | None = None,
        automatic: bool = False,
    ) -> WatchInfo:
        kind = _product(product)
        name = module_of(kind, module)
        await load_connection(self.engine, connection)
        _interval(interval_seconds)
        chosen = self._strategy(kind, strategy)
        now = self._now()
        return await store.create(
            self.engine,
            {
                "connection": connection, "product": kind, "module": name,
                "status": WatchStatus.ACTIVE, "automatic": automatic,
                "interval_seconds": interval_seconds, "strategy": chosen,
                "strategy_reason": "set by an operator" if chosen else None,
                "options": _options(options), "start_at": now, "next_run_at": now,
                "ids_at_watermark": [], "pending": [], "deletes_ids": [], "failures": 0,
                "created_at": now, "updated_at": now,
            },
        )  # fmt: skip

    def _strategy(self, product: Product, strategy: str | None) -> str | None:
        if strategy is None:
            return None
        if product is not Product.BOOKS:
            raise InvalidInput("a listing strategy is for Books watches only")
        try:
            return ListingStrategy(strategy).value
        except ValueError:
            raise InvalidInput("strategy must be filter, sorted or scan") from None

    def _now(self) -> datetime:
        # Whole seconds: the cursor is compared with Zoho's times (C2).
        return self.clock().astimezone(UTC).replace(microsecond=0)

    async def get(self, watch_id: int) -> WatchInfo:
        return await store.get(self.engine, watch_id)

    async def all(
        self, *, connection: str | None = None, module: str | None = None
    ) -> list[WatchInfo]:
        found = await store.list_all(self.engine, connection=connection)
        if module is None:
            return found
        names = module_names(module)
        return [w for w in found if w.module in names]

    async def pause(self, watch_id: int) -> WatchInfo:
        await self.get(watch_id)
        return await store.change(
            self.engine, watch_id, status=WatchStatus.PAUSED, updated_at=self._now()
        )

    async def resume(self, watch_id: int) -> WatchInfo:
        """Active again, due now; it catches up from its cursor."""
        now = self._now()
        return await store.change(
            self.engine, watch_id, status=WatchStatus.ACTIVE, next_run_at=now,
            deferred_until=None, deferred_reason=None, updated_at=now,
        )  # fmt: skip

    async def remove(self, watch_id: int) -> None:
        """Delete the watch; an automatic one is kept as `removed`, so it is not made
        again for its channel (resume it to watch again)."""
        watch = await self.get(watch_id)
        if watch.automatic:
            await store.change(
                self.engine, watch_id, status=WatchStatus.REMOVED, updated_at=self._now()
            )
        else:
            await store.remove(self.engine, watch_id)

    async def change(
        self,
        watch_id: int,
        *,
        interval_seconds: int | None = None,
        strategy: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> WatchInfo:
        watch = await self.get(watch_id)
        values: dict[str, Any] = {"updated_at": self._now()}
        if interval_seconds is not None:
            _interval(interval_seconds)
            values["interval_seconds"] = interval_seconds
        if strategy is not None:
            values["strategy"] = self._strategy(watch.product, strategy)
            values["strategy_reason"] = "set by an operator"
        if options is not None:
            values["options"] = {**watch.options, **_options(options)}
        return await store.change(self.engine, watch_id, **values)

    async def ensure_automatic(self) -> list[WatchInfo]:
        """A watch for every module named in a live managed channel's events (switched off
        with BRIDGE_RECONCILE_AUTO_WATCHES=false); returns those it made."""
        if not self.automatic:
            return []
        made = []
        existing = {
            (w.connection, w.module.casefold())
            for w in await store.list_all(self.engine, include_removed=True)
            if w.product is Product.CRM
        }
        for channel in await channel_store.list_managed(self.engine, live_only=True):
            if channel.status is ChannelStatus.DISABLED:
                continue
            for event in channel.events:
                module = event.rpartition(".")[0]
                key = (channel.connection, module.casefold())
                if not module or key in existing:
                    continue
                existing.add(key)
                try:
                    made.append(await self.add(channel.connection, "crm", module, automatic=True))
                except (InvalidInput, NotFound):
                    continue
        return made

    def view(self, watch: WatchInfo, days: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The status of one watch: cursor, lag, schedule, strategy, today's counts."""
        now = self.clock()
        schedule = self.policy.schedule(watch)
        state = health(
            now.replace(microsecond=0), watch.watermark, start=watch.start_at,
            failures=watch.failures, policy=schedule,
        )  # fmt: skip
        today = now.astimezone(UTC).strftime("%Y-%m-%d")
        counts = next((d for d in days or [] if d["day"] == today), {})
        return {
            "id": watch.id,
            "connection": watch.connection,
            "product": watch.product,
            "module": watch.module,
            "status": watch.status,
            "automatic": watch.automatic,
            "interval_seconds": int(schedule.interval.total_seconds()),
            "strategy": watch.strategy,
            "strategy_reason": watch.strategy_reason,
            "options": watch.options,
            "watermark": iso(watch.watermark),
            "lag_seconds": int(state.lag.total_seconds()),
            "healthy": not state.unhealthy,
            "problem": state.reason,
            "last_run_at": iso(watch.last_started_at),
            "last_success_at": iso(watch.last_success_at),
            "next_run_at": iso(watch.next_run_at),
            "deferred_until": iso(watch.deferred_until),
            "deferred_reason": watch.deferred_reason,
            "failures": watch.failures,
            "last_error": watch.last_error,
            "today": {k: counts.get(k, 0) for k in store.DAY_COUNTERS},
            "misses": _misses(watch.id, days or []),
        }

    async def views(
        self, *, connection: str | None = None, module: str | None = None, days: int = 7
    ) -> list[dict[str, Any]]:
        """Every watch's status, with misses by cause per day over the last `days` days."""
        found = await self.all(connection=connection, module=module)
        counts = await store.day_counts(
            self.engine, since_day=self._since_day(days), watch_ids=[w.id for w in found]
        )
        return [self.view(w, [c for c in counts if c["watch_id"] == w.id]) for w in found]

    async def view_one(self, watch_id: int, *, days: int = 7) -> dict[str, Any]:
        """One watch's status, as `views` shows it."""
        watch = await self.get(watch_id)
        counts = await store.day_counts(
            self.engine, since_day=self._since_day(days), watch_ids=[watch.id]
        )
        return self.view(watch, counts)

    def _since_day(self, days: int) -> str:
        return (self.clock() - timedelta(days=days - 1)).astimezone(UTC).strftime("%Y-%m-%d")

    async def problems(
        self, *, connection: str | None = None, module: str | None = None
    ) -> list[str]:
        """Watches an operator must look at: lag beyond 3 intervals, or failing again and
        again (with what is known of why)."""
        found = []
        for view in await self.views(connection=connection, module=module, days=1):
            budget = str(view["deferred_reason"] or "").startswith("budget")
            if view["status"] == WatchStatus.ACTIVE and budget and view["healthy"]:
                found.append(
                    f"reconciliation of {view['connection']} {view['module']} is slowed: "
                    f"{view['deferred_reason']}"
                )
            if view["status"] == WatchStatus.ACTIVE and not view["healthy"]:
                detail = view["last_error"] or view["deferred_reason"] or ""
                found.append(
                    f"reconciliation of {view['connection']} {view['module']}: "
                    f"{view['problem']}" + (f" ({detail})" if detail else "")
                )
        return found


def _misses(watch_id: int, days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    causes = ("missed", "gap", "not_subscribed", "delivery_failed")
    return [
        {"day": d["day"], **{c: d.get(c, 0) for c in causes}}
        for d in days
        if d["watch_id"] == watch_id
    ]
