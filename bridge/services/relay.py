"""The outbox relay: one worker per push sink claims due rows, publishes, settles them.

A worker sleeps until the writer's `committed` hook calls `wake` (new events reach the
sink within milliseconds) or, as a fallback for rows written by another replica or due
for retry, until `poll` seconds pass. Every replica may run a relay: leases in the
database decide who delivers which row.

A sink that cannot be reached at all (connection refused, broker down: `SinkUnavailable`)
is paused as a unit: its rows go back untried (no attempt counted, no backoff), nothing is
claimed for it, and it is probed after a growing, jittered delay (`RelayOptions.probe`)
with one real row, or a `check` when none is due. The first probe that gets through
resumes it at full rate. Row-level failures (one event refused) keep their own backoff.
Outages are recorded in the database (`sink_states`), so every process's status shows
them, logged once when they start and once when they end, and exported as
`bridge_sink_up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.attempts import Attempt, AttemptOutcome, excerpt
from bridge.domain.backoff import BackoffPolicy, RandomSource
from bridge.domain.delivery import DeadLetter, FailureKind, Retry, after_failure
from bridge.errors import BridgeError
from bridge.metrics import DELIVERIES, PUBLISH_SECONDS, SINK_PUBLISH_RATE, SINK_UP
from bridge.sinks.base import (
    BatchSink,
    Sink,
    SinkError,
    SinkNotStarted,
    SinkPermanentError,
    SinkTransientError,
    SinkUnavailable,
    SubscriberGone,
)
from bridge.store import attempts as attempt_store
from bridge.store import outbox, outbox_queries, relay_rates
from bridge.store.outbox import Claimed, Failure, RelayWrites

log = structlog.get_logger(__name__)


def _default_probe() -> BackoffPolicy:
    return BackoffPolicy(base=1.0, cap=10.0)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    owner: str
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    batch: int | None = None  # rows claimed at once; None: each sink's `default_batch`
    lease: timedelta = timedelta(seconds=120)
    poll: float = 1.0
    concurrency: int = 32
    # Shortest time between two claims of a sink while there is no backlog: under a steady
    # stream of commits the events of several gather into one batch (the cost of a claim
    # and a settlement is per batch), while an event after a quiet spell goes out at once.
    linger: float = 0.02
    # Delays between probes of an unreachable sink (max_attempts is not used).
    probe: BackoffPolicy = field(default_factory=_default_probe)
    # How often the relay writes its publish rates to the database (`store.relay_rates`).
    report_every: float = 5.0


@dataclass
class SinkHealth:
    """What this relay knows of one sink: started, and since when it is unreachable."""

    started: bool = False
    down_since: datetime | None = None
    reason: str | None = None
    failed_probes: int = 0
    # Whether `sink_states` says what this holds (the write may have failed).
    recorded: bool = False
    database_error: str | None = None


class RecentRate:
    """Events counted per whole second over the last `window` seconds; `now` is a
    monotonic clock reading in seconds."""

    def __init__(self, window: int = 60) -> None:
        self._window = window
        self._counts: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, count: int, now: float) -> None:
        second = int(now)
        if self._counts and self._counts[-1][0] == second:
            self._counts[-1][1] += count
        else:
            self._counts.append([second, count])
        self._trim(second)

    def per_second(self, now: float) -> float:
        self._trim(int(now))
        return sum(count for _, count in self._counts) / self._window

    def _trim(self, second: int) -> None:
        while self._counts and self._counts[0][0] <= second - self._window:
            self._counts.popleft()


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the sink as a whole cannot be reached (not this one event)."""
    return isinstance(error, SinkUnavailable | SinkNotStarted)


def _message(error: BaseException) -> str:
    return error.message if isinstance(error, BridgeError) else repr(error)


class Relay:
    """Delivers outbox rows to `sinks`; `start` spawns the workers, `stop` ends them."""

    def __init__(
        self,
        engine: AsyncEngine,
        sinks: Sequence[Sink],
        options: RelayOptions,
        clock: Callable[[], datetime],
        rng: RandomSource | None = None,
        writes: RelayWrites | None = None,
    ) -> None:
        self._engine = engine
        # SQLite: leases and settlements on a connection and thread of their own
        # (`store.relay_sqlite`).
        self._writes = writes
        self._sinks = list(sinks)
        self._options = options
        self._clock = clock
        self._rng = rng or random.Random()
        self._wakeups = {sink.name: asyncio.Event() for sink in self._sinks}
        self._health = {sink.name: SinkHealth() for sink in self._sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        # Per sink: the next batch, claimed while the one in hand is published.
        self._ahead: dict[str, asyncio.Task[list[Claimed]]] = {}
        # Per sink: the settlement of a batch every row of which the sink confirmed, still
        # being written while the next batch is published.
        self._settling: dict[str, asyncio.Task[datetime | None]] = {}
        self._rates = {sink.name: RecentRate() for sink in self._sinks}
        # How long each row's last publish took, until its attempt is recorded.
        self._took: dict[int, float] = {}
        # Per sink: (disabled, monotonic time it was read).
        self._disabled: dict[str, tuple[bool, float]] = {}

    @property
    def sink_names(self) -> list[str]:
        return [sink.name for sink in self._sinks]

    def health(self, name: str) -> SinkHealth:
        return self._health[name]

    def problems(self) -> list[str]:
        """Outages this relay sees that the database does not hold yet (its write failed);
        the recorded ones are in `sink_states`, read by every process's status."""
        return [
            f"sink {name} {h.reason} (since {h.down_since:%Y-%m-%d %H:%M:%S}Z)"
            for name, h in self._health.items()
            if h.down_since is not None and not h.recorded
        ]

    def publish_rates(self) -> dict[str, float]:
        """Events per second each sink confirmed to this relay, over the last minute."""
        now = time.monotonic()
        return {name: rate.per_second(now) for name, rate in self._rates.items()}

    def wake(self, *_: object) -> None:
        """Tell every worker there is new work (the writer's `committed` hook)."""
        for event in self._wakeups.values():
            event.set()

    async def start(self) -> None:
        with contextlib.suppress(BridgeError):  # an optimisation: the relay works without
            await outbox.ensure_statistics(self._engine)
        for sink in self._sinks:
            self._tasks.append(asyncio.create_task(self._work(sink), name=f"relay-{sink.name}"))
        self._tasks.append(asyncio.create_task(self._report(), name="relay-rates"))

    async def stop(self, grace: float = 5.0) -> None:
        """Let each worker finish the batch in hand (up to `grace` seconds), then stop.

        A batch cut short is not lost: its rows stay leased and are sent again once the
        lease runs out, which subscribers dedupe.
        """
        self._stopped.set()
        self.wake()
        if self._tasks:
            _, unfinished = await asyncio.wait(self._tasks, timeout=grace)
            for task in unfinished:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        for name in list(self._settling):
            with contextlib.suppress(Exception):
                await self._settled(name)
        for name in list(self._ahead):
            await self._release_ahead(name, "the relay stopped")
        for sink in self._sinks:
            with contextlib.suppress(Exception):
                await sink.close()
        if self._writes is not None:
            with contextlib.suppress(Exception):
                await self._writes.close()
        with contextlib.suppress(Exception):  # else left out of status once it is stale
            await relay_rates.forget(self._engine, self._options.owner)

    async def _report(self) -> None:
        """Write this relay's publish rates to the database every `report_every` seconds,
        for the status of every process (the first at once: a running relay shows)."""
        while not self._stopped.is_set():
            try:
                await relay_rates.report(
                    self._engine, self._options.owner, self.publish_rates(), self._clock()
                )
            except BridgeError:
                pass  # the database is away: the next turn tries again
            except Exception as exc:  # a bug must not end the reports (or break `stop`)
                log.error("relay rates not reported", error_type=type(exc).__name__)
            await self._sleep(self._options.report_every)

    async def _work(self, sink: Sink) -> None:
        health = self._health[sink.name]
        wakeup = self._wakeups[sink.name]
        rate = self._rates[sink.name]
        last_claim, backlog = -1e9, False
        while not self._stopped.is_set():
            wait = self._options.poll
            handled = 0
            SINK_PUBLISH_RATE.labels(sink.name).set(rate.per_second(time.monotonic()))
            try:
                if not health.recorded:
                    await self._record(sink.name, health)
                if health.down_since is not None or not health.started:
                    if health.down_since is not None:
                        await self._sleep(self._probe_delay(health))
                    if self._stopped.is_set() or not await self._recover(sink, health):
                        continue
                if await self._is_disabled(sink.name):
                    handled = 0
                else:
                    gap = self._options.linger - (time.monotonic() - last_claim)
                    if gap > 0 and not backlog:
                        await self._sleep(gap)
                    last_claim = time.monotonic()
                    handled, soonest = await self.deliver_batch(sink)
                    if soonest is not None:
                        wait = min(wait, max(0.0, (soonest - self._clock()).total_seconds()))
                self._database_ok(sink.name, health)
            except BridgeError as exc:
                if health.database_error is None:
                    log.warning("relay cannot reach the database", sink=sink.name,
                                error=exc.message)  # fmt: skip
                health.database_error = exc.message
            except Exception as exc:  # a bug must not end delivery for good: log, go on
                log.error("relay error", sink=sink.name, error_type=type(exc).__name__)
            if health.down_since is not None or self._stopped.is_set():
                continue  # paused: the next turn waits for the probe, not for new rows
            backlog = handled >= self._batch(sink)
            if backlog:
                continue  # more may be waiting: no sleep while there is a backlog
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=wait)
            wakeup.clear()

    def _batch(self, sink: Sink) -> int:
        return self._options.batch or sink.default_batch

    async def _is_disabled(self, name: str) -> bool:
        """Whether the sink is switched off (410 Gone), read from the database at most once
        per `poll` seconds: not one more round trip per batch while a backlog drains."""
        known = self._disabled.get(name)
        if known is None or time.monotonic() - known[1] >= self._options.poll:
            disabled = name in await outbox_queries.disabled_sinks(self._engine)
            known = self._disabled[name] = (disabled, time.monotonic())
        return known[0]

    async def _claim(self, name: str, limit: int) -> list[Claimed]:
        opts = self._options
        return await outbox.claim(
            self._engine, name, opts.owner, now=self._clock(), lease=opts.lease, limit=limit,
            writes=self._writes,
        )  # fmt: skip

    async def _release_ahead(self, name: str, reason: str) -> None:
        """Hand back, untried, a batch claimed ahead that will not be published now."""
        task = self._ahead.pop(name, None)
        if task is None:
            return
        with contextlib.suppress(Exception):
            rows = await task
            await outbox.release(self._engine, [row.delivery_id for row in rows], reason)

    def _database_ok(self, name: str, health: SinkHealth) -> None:
        if health.database_error is not None:
            log.warning("relay reaches the database again", sink=name)
            health.database_error = None

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the relay stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)

    def _probe_delay(self, health: SinkHealth) -> float:
        # Between half and all of the ceiling: probes of several replicas spread out, and
        # none comes back so soon that a dead broker is hammered.
        ceiling = self._options.probe.ceiling(health.failed_probes + 1)
        return ceiling * (0.5 + 0.5 * self._rng.random())

    async def _recover(self, sink: Sink, health: SinkHealth) -> bool:
        """Start the sink, or probe it while it is paused; True once it works."""
        if not health.started:
            # A broker that is down at startup must not stop the bridge: keep trying. A
            # permanent refusal (wrong password, an exchange of another type) is retried
            # too, since the operator may fix the broker without restarting the bridge.
            try:
                await sink.start()
            except SinkError as exc:
                await self._went_down(sink.name, health, f"cannot start: {exc.message}")
                return False
            health.started = True
            await self._came_up(sink.name, health)
            return True
        now = self._clock()
        disabled = sink.name in await outbox_queries.disabled_sinks(self._engine)
        claimed = [] if disabled else await outbox.claim(
            self._engine, sink.name, self._options.owner, now=now, lease=self._options.lease,
            limit=1, writes=self._writes,
        )  # fmt: skip
        if not claimed:
            try:
                await sink.check()
            except SinkError as exc:
                await self._went_down(sink.name, health, f"is unreachable: {exc.message}")
                return False
            await self._came_up(sink.name, health)
            return True
        [row] = claimed
        error = await self._publish(sink, row, asyncio.Semaphore(1))
        if error is not None and is_outage(error):
            await outbox.release(self._engine, [row.delivery_id], _message(error))
            probe = self._attempt(row, error, AttemptOutcome.UNAVAILABLE, self._clock())
            with contextlib.suppress(BridgeError):  # the history must not stop the probe
                await attempt_store.add_attempts(self._engine, [probe])
            DELIVERIES.labels(sink.name, "unavailable").inc()
            await self._went_down(sink.name, health, f"is unreachable: {_message(error)}")
            return False
        # It answered (even a refusal of this one event): the sink is back.
        await self._settle(sink, [row], [error], self._clock())
        await self._came_up(sink.name, health)
        return True

    async def _went_down(self, name: str, health: SinkHealth, reason: str) -> None:
        now = self._clock()
        if health.down_since is None:
            health.down_since, health.failed_probes = now, 0
            log.warning("sink unreachable: its deliveries wait in the outbox", sink=name,
                        error=reason)  # fmt: skip
            SINK_UP.labels(name).set(0)
        else:
            health.failed_probes += 1
        health.reason = reason
        health.recorded = False
        await self._record(name, health)

    async def _came_up(self, name: str, health: SinkHealth) -> None:
        if health.down_since is not None:
            seconds = (self._clock() - health.down_since).total_seconds()
            log.warning("sink reachable again: delivering", sink=name,
                        down_seconds=round(seconds, 1))  # fmt: skip
            health.recorded = False
        health.down_since, health.reason, health.failed_probes = None, None, 0
        SINK_UP.labels(name).set(1)
        if not health.recorded:
            await self._record(name, health)

    async def _record(self, name: str, health: SinkHealth) -> None:
        """Make `sink_states` say what `health` holds (at start, this clears an outage a
        previous process recorded). A failure is left for the next turn to retry."""
        try:
            if health.down_since is None:
                if health.started:
                    await outbox_queries.record_sink_up(self._engine, name)
                else:
                    return  # nothing known yet
            else:
                await outbox_queries.record_sink_down(
                    self._engine, name, reason=health.reason or "is unreachable",
                    since=health.down_since, now=self._clock(), replica=self._options.owner,
                )  # fmt: skip
        except BridgeError:
            return
        health.recorded = True

    async def deliver_batch(self, sink: Sink) -> tuple[int, datetime | None]:
        """Claim and publish one batch; returns (rows handled, earliest retry time).

        If the sink turns out to be unreachable, the rows it failed go back untried and
        the sink is paused (`health(name).down_since` is set)."""
        batch = self._batch(sink)
        ahead = self._ahead.pop(sink.name, None)
        claimed = await ahead if ahead is not None else await self._claim(sink.name, batch)
        if not claimed:
            await self._settled(sink.name)
            return 0, None
        full = len(claimed) >= batch and not self._stopped.is_set()
        if full:
            # A backlog: claim the next batch while this one is published, so the database
            # and the sink work at the same time. Each record's order holds: this batch's
            # rows are leased, so the next claim passes over their records' later rows.
            self._ahead[sink.name] = asyncio.create_task(self._claim(sink.name, batch))
        results = await self._publish_batch(sink, claimed)
        now = self._clock()
        if full and not any(results):
            # Every row confirmed: settling it (marking rows delivered, recording attempts)
            # can go on while the next batch is published. At most one such settlement
            # per sink is in flight; rows stay leased (so their records' later rows wait)
            # until it commits. Failures are settled before anything else is published,
            # so a 410 disables the sink before the next batch reaches the subscriber.
            settling = asyncio.create_task(self._settle(sink, claimed, results, now))
            previous, self._settling[sink.name] = self._settling.get(sink.name), settling
            if previous is not None:
                await previous  # its failure surfaces here; the new one stays in hand
            return len(claimed), None
        await self._settled(sink.name)
        outages = [(row, error) for row, error in zip(claimed, results, strict=True)
                   if error is not None and is_outage(error)]  # fmt: skip
        unavailable = [self._attempt(row, error, AttemptOutcome.UNAVAILABLE, now)
                       for row, error in outages]  # fmt: skip
        if outages:
            await outbox.release(
                self._engine, [row.delivery_id for row, _ in outages], _message(outages[0][1])
            )
            DELIVERIES.labels(sink.name, "unavailable").inc(len(outages))
            await self._release_ahead(sink.name, _message(outages[0][1]))
            await self._went_down(
                sink.name, self._health[sink.name], f"is unreachable: {_message(outages[0][1])}"
            )
        rest = [(row, error) for row, error in zip(claimed, results, strict=True)
                if error is None or not is_outage(error)]  # fmt: skip
        retry_at = await self._settle(
            sink, [r for r, _ in rest], [e for _, e in rest], now, also=unavailable
        )
        return len(claimed), retry_at

    async def _settled(self, name: str) -> None:
        """Wait for the sink's settlement in flight, if any (raising its failure)."""
        settling = self._settling.pop(name, None)
        if settling is not None:
            await settling

    async def _settle(
        self,
        sink: Sink,
        rows: Sequence[Claimed],
        errors: Sequence[BaseException | None],
        now: datetime,
        also: Sequence[Attempt] = (),
    ) -> datetime | None:
        """Mark published rows delivered and failed ones for retry or dead, and record
        every attempt (with `also`, the batch's attempts that found the sink unreachable);
        returns the earliest retry time.

        A batch sink's delivering tries (every push sink's) are recorded on their rows
        (`publish_ms`, with `delivered_at` and `lease_owner`), not as attempt rows: that
        insert was the largest part of a settlement on PostgreSQL, and a success says no
        more than those three. Failed and unavailable tries keep their attempt rows (the
        error, the subscriber's status and answer)."""
        delivered = [row.delivery_id for row, error in zip(rows, errors, strict=True)
                     if error is None]  # fmt: skip
        failures = [
            self._failure(row, error, now)
            for row, error in zip(rows, errors, strict=True)
            if error is not None
        ]
        on_rows = isinstance(sink, BatchSink)
        made = self._attempts(rows, errors, failures, now, also, delivered_on_rows=on_rows)
        publish_ms = None
        if on_rows and delivered:
            took = [self._took.pop(delivery_id, 0.0) for delivery_id in delivered]
            publish_ms = max(took) * 1000
        try:
            await outbox.settle(self._engine, delivered, failures, made, now, self._writes,
                                publish_ms=publish_ms)  # fmt: skip
        except Exception as exc:
            # The rows matter, their history does not: settle them alone. (If the database
            # as a whole fails, this fails too, and the rows are sent again after their
            # lease, which subscribers dedupe.)
            await outbox.mark_delivered(self._engine, delivered, now, publish_ms)
            await outbox.mark_failed(self._engine, failures)
            log.warning("delivery attempts not recorded", error=_message(exc), count=len(made))
        DELIVERIES.labels(sink.name, "delivered").inc(len(delivered))
        self._rates[sink.name].add(len(delivered), time.monotonic())
        for failure in failures:
            outcome = "retry" if isinstance(failure.outcome, Retry) else "dead"
            DELIVERIES.labels(sink.name, outcome).inc()
        if any(isinstance(f.outcome, DeadLetter) and f.outcome.disable_sink for f in failures):
            # The failure that disabled it (a 410), not the batch's first dead letter.
            reason = next(
                f.error for f in failures
                if isinstance(f.outcome, DeadLetter) and f.outcome.disable_sink
            )  # fmt: skip
            await outbox_queries.set_sink_state(
                self._engine, sink.name, disabled=True, reason=reason, now=now
            )
            self._disabled[sink.name] = (True, time.monotonic())
            await self._release_ahead(sink.name, reason)
            log.error("sink disabled: the subscriber is gone", sink=sink.name, reason=reason)
        return min((f.outcome.at for f in failures if isinstance(f.outcome, Retry)), default=None)

    async def _publish_batch(
        self, sink: Sink, rows: Sequence[Claimed]
    ) -> Sequence[BaseException | None]:
        """Publish a claimed batch: each row's error, or None once the sink confirmed it.

        Rows of one batch belong to distinct records (see `claim`), so they may be
        published concurrently, or pipelined, without breaking any record's order."""
        if not isinstance(sink, BatchSink):
            gate = asyncio.Semaphore(self._options.concurrency)
            return await asyncio.gather(*(self._publish(sink, row, gate) for row in rows))
        started = time.perf_counter()
        try:
            results: Sequence[BaseException | None] = await sink.publish_batch(
                [row.message for row in rows]
            )
        except Exception as exc:  # the batch as a whole failed: settled on every row
            results = [exc] * len(rows)
        elapsed = time.perf_counter() - started
        histogram = PUBLISH_SECONDS.labels(sink.name)
        for row in rows:  # each event waited this long for its confirmation
            histogram.observe(elapsed)
            self._took[row.delivery_id] = elapsed
        return results

    async def _publish(
        self, sink: Sink, row: Claimed, gate: asyncio.Semaphore
    ) -> BaseException | None:
        async with gate:
            started = time.perf_counter()
            try:
                await sink.publish(row.message)
            except Exception as exc:  # every failure is settled on the row, never lost
                return exc
            finally:
                took = time.perf_counter() - started
                self._took[row.delivery_id] = took
                PUBLISH_SECONDS.labels(sink.name).observe(took)
        return None

    def _attempt(
        self, row: Claimed, error: BaseException | None, outcome: AttemptOutcome, now: datetime
    ) -> Attempt:
        """What one try of `row` did, for its history (`GET /admin/outbox/{id}`)."""
        took = self._took.pop(row.delivery_id, 0.0)
        if error is None:
            return Attempt(row.delivery_id, now, outcome, took * 1000, replica=self._options.owner)
        return Attempt(
            row.delivery_id, now, outcome, took * 1000,
            status_code=error.status_code if isinstance(error, SinkError) else None,
            error=excerpt(_message(error)),
            response=excerpt(error.response) if isinstance(error, SinkError) else None,
            replica=self._options.owner,
        )  # fmt: skip

    def _attempts(
        self,
        rows: Sequence[Claimed],
        errors: Sequence[BaseException | None],
        failures: Sequence[Failure],
        now: datetime,
        also: Sequence[Attempt],
        *,
        delivered_on_rows: bool = False,
    ) -> list[Attempt]:
        """The attempt rows to record: all tries, or with `delivered_on_rows` the failed
        ones only (a delivering try is then recorded on its row)."""
        dead = {f.delivery_id for f in failures if isinstance(f.outcome, DeadLetter)}
        made = [*also]
        for row, error in zip(rows, errors, strict=True):
            if error is None and delivered_on_rows:
                continue
            outcome = (AttemptOutcome.DELIVERED if error is None
                       else AttemptOutcome.DEAD if row.delivery_id in dead
                       else AttemptOutcome.RETRY)  # fmt: skip
            made.append(self._attempt(row, error, outcome, now))
        return made

    def _failure(self, row: Claimed, error: BaseException, now: datetime) -> Failure:
        attempts = row.attempts + 1
        retry_after = None
        if isinstance(error, SubscriberGone):
            kind = FailureKind.GONE
        elif isinstance(error, SinkPermanentError):
            kind = FailureKind.PERMANENT
        else:
            # Transient by declaration, or an unexpected error: retrying is the safe side.
            kind = FailureKind.TRANSIENT
            if isinstance(error, SinkTransientError):
                retry_after = error.retry_after
            else:
                log.error("unexpected publish error", error_type=type(error).__name__)
        outcome = after_failure(kind, attempts, self._options.policy, self._rng, now, retry_after)
        return Failure(row.delivery_id, attempts, outcome, _message(error))
