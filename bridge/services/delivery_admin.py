"""Operator actions on delivery, shared by the admin API and the CLI: replay, retry, status."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import InvalidInput, NotFound
from bridge.services import subscriptions as subscription_service
from bridge.sinks.config import PULL
from bridge.store import event_queries, outbox_queries
from bridge.store import subscriptions as subscription_store

# Oldest pending delivery older than this shows up as a problem in the status.
STUCK_SECONDS = 300.0


def target_sinks(push_sinks: Sequence[str], sink: str | None) -> list[str]:
    """The push sinks a replay goes to: all of them, or the one named."""
    if sink is None:
        return list(push_sinks)
    if sink == PULL:
        raise InvalidInput(
            "pull subscribers replay by moving their cursor: "
            "POST /admin/subscriptions/{name}/rewind"
        )
    if sink not in push_sinks:
        raise InvalidInput(f"no push sink {sink!r} is configured (BRIDGE_SINKS)")
    return [sink]


async def replay_event(
    engine: AsyncEngine, push_sinks: Sequence[str], event_id: str, sink: str | None, now: datetime
) -> list[str]:
    """Queue one stored event again (same envelope, same `id`); returns the sinks."""
    found = await event_queries.get_event(engine, event_id)
    if found is None:
        raise NotFound(f"no event {event_id}")
    sinks = target_sinks(push_sinks, sink)
    await outbox_queries.enqueue_replay(
        engine, event_queries.EventFilter(), sinks, now=now, after_seq=found.seq - 1, limit=1,
        event_id=found.id,
    )  # fmt: skip
    return sinks


async def replay_matching(
    engine: AsyncEngine,
    push_sinks: Sequence[str],
    where: event_queries.EventFilter,
    sink: str | None,
    now: datetime,
    progress: Callable[[int, int], None] = lambda done, total: None,
    batch: int = 1000,
) -> int:
    """Queue every event matching `where` again, in batches; returns how many events."""
    sinks = target_sinks(push_sinks, sink)
    total = await outbox_queries.count_events(engine, where)
    done, cursor = 0, 0
    while True:
        count, last = await outbox_queries.enqueue_replay(
            engine, where, sinks, now=now, after_seq=cursor, limit=batch
        )
        if last is None:
            break
        done, cursor = done + count, last
        progress(done, max(total, done))
    return done


async def rewind(engine: AsyncEngine, name: str, seq: int, now: datetime) -> int:
    if seq < 0:
        raise InvalidInput("seq must be 0 or more")
    if await subscription_store.get(engine, name) is None:
        raise NotFound(f"no subscription named {name!r}")
    return await subscription_service.move_cursor(engine, name, seq, now, forward_only=False)


async def retry(engine: AsyncEngine, *, sink: str | None, ids: Sequence[int], now: datetime) -> int:
    """Dead rows back to pending; a sink disabled by a 410 is switched back on with them."""
    count = await outbox_queries.retry_dead(engine, now=now, sink=sink, ids=ids)
    disabled = await outbox_queries.disabled_sinks(engine)
    for name in disabled:
        if sink is None or name == sink:
            await outbox_queries.set_sink_state(engine, name, disabled=False, reason=None, now=now)
    return count


@dataclass
class SinkStatus:
    name: str
    pending: int
    dead: int
    oldest_pending_seconds: float | None
    replays_pending: int
    disabled: bool
    disabled_reason: str | None


@dataclass
class Status:
    sinks: list[SinkStatus]
    events: int
    last_event_at: datetime | None
    last_seq: int | None
    subscriptions: list[tuple[str, int]]
    problems: list[str] = field(default_factory=list)


async def status(engine: AsyncEngine, push_sinks: Sequence[str], now: datetime) -> Status:
    counts = await outbox_queries.sink_counts(engine)
    disabled = await outbox_queries.disabled_sinks(engine)
    events, last_at, last_seq = await outbox_queries.event_stats(engine)
    subs = await subscription_store.list_all(engine)
    # Sinks no longer configured still show while they hold rows: they need attention.
    names = list(push_sinks) + sorted(set(counts) - set(push_sinks))
    sinks: list[SinkStatus] = []
    problems: list[str] = []
    for name in names:
        c = counts.get(name, outbox_queries.SinkCounts())
        age = (now - c.oldest_pending).total_seconds() if c.oldest_pending else None
        sinks.append(SinkStatus(name, c.pending, c.dead, age, c.replays_pending,
                                name in disabled, disabled.get(name)))  # fmt: skip
        if name in disabled:
            problems.append(f"sink {name} is disabled: {disabled[name]}")
        if c.dead:
            problems.append(f"sink {name} has {c.dead} dead deliveries")
        if age is not None and age > STUCK_SECONDS:
            problems.append(f"sink {name}: oldest pending delivery is {age:.0f} s old")
        if name not in push_sinks:
            problems.append(f"sink {name} is not configured but has undelivered rows")
    return Status(sinks, events, last_at, last_seq, [(s.name, s.acked_seq) for s in subs],
                  problems)  # fmt: skip
