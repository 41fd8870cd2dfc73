"""What a reconciliation run needs to know besides Zoho's answers: which stored events are
its webhooks (the sources to match), the source its own events carry, and the delivery
paths that could have announced a change (channels and their gaps, linked Books sources,
bridge downtime) for attributing a cause to each miss."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.events import Product
from bridge.domain.reconcile_causes import BooksCoverage, CauseContext, ChannelCoverage, Interval
from bridge.domain.states import ChannelStatus
from bridge.store import downtime
from bridge.store import managed_channels as channel_store
from bridge.store import sources as source_store
from bridge.store.reconcile_writes import operations_delivered
from bridge.store.watches import WatchInfo


@dataclass(frozen=True, slots=True)
class WatchContext:
    """`sources`: whose stored events are this watch's webhooks; `emit_source`: the source
    its reconciled events carry; `causes`: the delivery paths, for attributing misses."""

    sources: tuple[str, ...]
    emit_source: str
    causes: CauseContext


def _covers_module(events: tuple[str, ...], module: str) -> bool:
    wanted = module.casefold()
    return any(event.rpartition(".")[0].casefold() == wanted for event in events)


async def crm_context(
    engine: AsyncEngine, watch: WatchInfo, *, since: datetime, extra_sources: tuple[str, ...]
) -> WatchContext:
    """The connection's managed channels (with their gaps, "not live since" and expiry)
    and the sources their callbacks are stored under, plus the connection's name and any
    sources the watch names (imported channels created for this org)."""
    channels = [
        c
        for c in await channel_store.list_managed(engine, live_only=False)
        if c.connection == watch.connection
    ]
    gaps = await channel_store.list_gaps(engine, connection=watch.connection)
    coverage = []
    for channel in channels:
        channel_gaps = tuple(
            Interval(g.gap_from, g.gap_to) for g in gaps if g.channel_id == channel.channel_id
        )
        disabled_from = channel.created_at if channel.status is ChannelStatus.DISABLED else None
        coverage.append(
            ChannelCoverage(
                channel_id=channel.channel_id,
                events=channel.events,
                # Zoho's times are whole seconds: a change in the second the channel was
                # made counts as covered (it was made before the change was listed).
                created_at=channel.created_at.replace(microsecond=0),
                gaps=channel_gaps,
                # A disabled channel announces nothing: treat it as down since it was made,
                # so only channels that could have sent count as covering.
                down_since=channel.down_since or disabled_from,
                expires_at=channel.expires_at,
            )
        )
    watching = [c for c in channels if _covers_module(c.events, watch.module)]
    emit_source = watching[0].source if watching else watch.connection
    sources = tuple(dict.fromkeys([*(c.source for c in channels), watch.connection,
                                   *extra_sources]))  # fmt: skip
    causes = CauseContext(
        product=Product.CRM,
        module=watch.module,
        channels=tuple(coverage),
        downtime=await _downtime(engine, since),
    )
    return WatchContext(sources, emit_source, causes)


async def books_context(
    engine: AsyncEngine, watch: WatchInfo, *, since: datetime, extra_sources: tuple[str, ...]
) -> WatchContext:
    """The Books sources linked to the connection: whose webhooks match this watch, and
    which operations of the entity they ever delivered (a workflow rule exists)."""
    linked = [
        s.name for s in await source_store.list_sources(engine) if s.connection == watch.connection
    ]
    sources = tuple(dict.fromkeys([*linked, *extra_sources]))
    delivered = await operations_delivered(engine, sources=sources, module=watch.module)
    causes = CauseContext(
        product=Product.BOOKS,
        module=watch.module,
        books=BooksCoverage(linked=bool(sources), delivered=delivered),
        downtime=await _downtime(engine, since),
    )
    emit_source = linked[0] if linked else watch.connection
    return WatchContext(sources or (watch.connection,), emit_source, causes)


async def _downtime(engine: AsyncEngine, since: datetime) -> tuple[Interval, ...]:
    # A day before the read window: a change's delivery slack can reach back into it.
    found = await downtime.spans(engine, since - timedelta(days=1))
    return tuple(Interval(start, end) for start, end in found)
