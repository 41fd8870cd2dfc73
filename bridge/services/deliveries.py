"""Deliveries (one event to one push sink, through the outbox) as operators act on them:
list, retry dead letters, replay, purge, and the delivery part of the status overview."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.attempts import Attempt
from bridge.domain.events import EventFilter
from bridge.errors import InvalidInput, NotFound
from bridge.metrics import OUTBOX_DEAD, OUTBOX_OLDEST_PENDING, OUTBOX_PENDING
from bridge.services.retention import purge
from bridge.sinks.config import PULL
from bridge.store import event_queries, events_stats, outbox_queries
from bridge.store import subscriptions as subscription_store
from bridge.store.attempts import attempts_of
from bridge.store.event_deliveries import deliveries_of_event, get_delivery
from bridge.store.outbox_queries import DeliveryInfo

# Oldest pending delivery older than this shows up as a problem in the status.
STUCK_SECONDS = 300.0


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


def _nothing_to_wake() -> None:
    """A one-shot CLI process runs no relay; the server's relay finds the rows itself."""


@dataclass
class DeliveryService:
    """The outbox of this bridge's push sinks. `wake` nudges this process's relay (if it
    runs one) after rows were queued again, so they go out at once."""

    engine: AsyncEngine
    push_sinks: tuple[str, ...]
    clock: Callable[[], datetime]
    retention_days: int
    wake: Callable[[], None] = _nothing_to_wake

    def target_sinks(self, sink: str | None) -> list[str]:
        """The push sinks a replay goes to: all of them, or the one named."""
        if sink is None:
            return list(self.push_sinks)
        if sink == PULL:
            raise InvalidInput(
                "pull subscribers replay by moving their cursor: "
                "POST /admin/subscriptions/{name}/rewind"
            )
        if sink not in self.push_sinks:
            raise InvalidInput(f"no push sink {sink!r} is configured (BRIDGE_SINKS)")
        return [sink]

    async def find(
        self,
        *,
        status: str | None = None,
        sink: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[DeliveryInfo]:
        """Outbox rows, newest first."""
        return await outbox_queries.list_deliveries(
            self.engine, status=status, sink=sink, before_id=before_id, limit=limit
        )

    async def get(self, delivery_id: int) -> DeliveryInfo:
        found = await get_delivery(self.engine, delivery_id) if 0 < delivery_id < 2**63 else None
        if found is None:
            raise NotFound(f"no outbox row {delivery_id}")
        return found

    async def attempts(self, delivery_ids: Sequence[int]) -> dict[int, list[Attempt]]:
        """Each delivery's publish attempts, oldest first (kept across manual retries)."""
        return await attempts_of(self.engine, delivery_ids)

    async def of_event(self, event_seq: int) -> list[DeliveryInfo]:
        """One event's outbox rows, oldest first: its first delivery per sink, then replays."""
        return await deliveries_of_event(self.engine, event_seq)

    async def replay_event(self, event_id: str, sink: str | None) -> list[str]:
        """Queue one stored event again (same envelope, same `id`); returns the sinks."""
        found = await event_queries.get_event(self.engine, event_id)
        if found is None:
            raise NotFound(f"no event {event_id}")
        sinks = self.target_sinks(sink)
        await outbox_queries.enqueue_replay(
            self.engine, EventFilter(), sinks, now=self.clock(), after_seq=found.seq - 1,
            limit=1, event_id=found.id,
        )  # fmt: skip
        self.wake()
        return sinks

    async def replay_matching(
        self,
        where: EventFilter,
        sink: str | None,
        progress: Callable[[int, int], None] = lambda done, total: None,
        batch: int = 1000,
    ) -> int:
        """Queue every event matching `where` again, in batches; returns how many events."""
        sinks = self.target_sinks(sink)
        total = await outbox_queries.count_events(self.engine, where)
        done, cursor = 0, 0
        now = self.clock()
        while True:
            count, last = await outbox_queries.enqueue_replay(
                self.engine, where, sinks, now=now, after_seq=cursor, limit=batch
            )
            if last is None:
                break
            done, cursor = done + count, last
            progress(done, max(total, done))
            self.wake()
        return done

    async def retry(self, *, sink: str | None = None, ids: Sequence[int] = ()) -> int:
        """Dead rows back to pending (of `sink`, or these `ids`, or all); a sink disabled
        by a 410 is switched back on when it is named, when rows of it are retried by id,
        or when everything is retried."""
        now = self.clock()
        retried = await outbox_queries.retry_dead(self.engine, now=now, sink=sink, ids=ids)
        count = len(retried)
        for name in await outbox_queries.disabled_sinks(self.engine):
            if name == sink or (sink is None and (not ids or name in retried)):
                await outbox_queries.set_sink_state(
                    self.engine, name, disabled=False, reason=None, now=now
                )
        self.wake()
        return count

    async def purge(self, days: int | None = None) -> int:
        """Delete events past the retention period that every consumer has had."""
        return await purge(self.engine, days=days or self.retention_days, now=self.clock())

    async def status(self) -> Status:
        """Per-sink backlog and dead letters, event count, subscriptions, problems."""
        engine = self.engine
        sinks = await self.sink_statuses()
        events, last_at, last_seq = await events_stats.event_stats(engine)
        subs = await subscription_store.list_all(engine)
        problems: list[str] = []
        for sink in sinks:
            name, age, disabled = sink.name, sink.oldest_pending_seconds, sink.disabled_reason
            if sink.disabled:
                problems.append(f"sink {name} is disabled: {disabled}")
            if sink.dead:
                problems.append(f"sink {name} has {sink.dead} dead deliveries")
            if age is not None and age > STUCK_SECONDS:
                problems.append(f"sink {name}: oldest pending delivery is {age:.0f} s old")
            if name not in self.push_sinks:
                problems.append(f"sink {name} is not configured but has undelivered rows")
        return Status(sinks, events, last_at, last_seq, [(s.name, s.acked_seq) for s in subs],
                      problems)  # fmt: skip

    async def sink_statuses(self) -> list[SinkStatus]:
        """Each push sink's backlog, oldest pending age and dead letters; sinks no longer
        configured still show while they hold rows (they need attention)."""
        counts = await outbox_queries.sink_counts(self.engine)
        disabled = await outbox_queries.disabled_sinks(self.engine)
        now = self.clock()
        names = list(self.push_sinks) + sorted(set(counts) - set(self.push_sinks))
        sinks: list[SinkStatus] = []
        for name in names:
            c = counts.get(name, outbox_queries.SinkCounts())
            age = (now - c.oldest_pending).total_seconds() if c.oldest_pending else None
            sinks.append(SinkStatus(name, c.pending, c.dead, age, c.replays_pending,
                                    name in disabled, disabled.get(name)))  # fmt: skip
        return sinks

    async def export_backlog(self) -> None:
        """Set the outbox gauges (`bridge_outbox_pending`, `_oldest_pending_seconds`,
        `_dead`) from the database: read when /metrics is scraped, so every replica
        exports the same, current figures."""
        for sink in await self.sink_statuses():
            OUTBOX_PENDING.labels(sink.name).set(sink.pending)
            OUTBOX_OLDEST_PENDING.labels(sink.name).set(sink.oldest_pending_seconds or 0.0)
            OUTBOX_DEAD.labels(sink.name).set(sink.dead)
