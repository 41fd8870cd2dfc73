"""The outbox relay: one worker per push sink claims due rows, publishes, settles them.

A worker sleeps until the writer's `committed` hook calls `wake` (new events reach the
sink within milliseconds) or, as a fallback for rows written by another replica or due
for retry, until `poll` seconds pass. Every replica may run a relay: leases in the
database decide who delivers which row.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.backoff import BackoffPolicy, RandomSource
from bridge.domain.delivery import DeadLetter, FailureKind, Retry, after_failure
from bridge.errors import BridgeError
from bridge.metrics import DELIVERIES, PUBLISH_SECONDS
from bridge.sinks.base import (
    Sink,
    SinkError,
    SinkPermanentError,
    SinkTransientError,
    SubscriberGone,
)
from bridge.store import outbox, outbox_queries
from bridge.store.outbox import Claimed, Failure

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    owner: str
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    batch: int = 100
    lease: timedelta = timedelta(seconds=120)
    poll: float = 1.0
    concurrency: int = 32


class Relay:
    """Delivers outbox rows to `sinks`; `start` spawns the workers, `stop` ends them."""

    def __init__(
        self,
        engine: AsyncEngine,
        sinks: Sequence[Sink],
        options: RelayOptions,
        clock: Callable[[], datetime],
        rng: RandomSource | None = None,
    ) -> None:
        self._engine = engine
        self._sinks = list(sinks)
        self._options = options
        self._clock = clock
        self._rng = rng or random.Random()
        self._wakeups = {sink.name: asyncio.Event() for sink in self._sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._not_started: dict[str, str] = {}
        self._stopped = asyncio.Event()

    @property
    def sink_names(self) -> list[str]:
        return [sink.name for sink in self._sinks]

    def problems(self) -> list[str]:
        """What keeps this relay from delivering right now (sinks it cannot start)."""
        return [f"sink {name} cannot start: {why}" for name, why in self._not_started.items()]

    def wake(self, *_: object) -> None:
        """Tell every worker there is new work (the writer's `committed` hook)."""
        for event in self._wakeups.values():
            event.set()

    async def start(self) -> None:
        for sink in self._sinks:
            self._tasks.append(asyncio.create_task(self._work(sink), name=f"relay-{sink.name}"))

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
        for sink in self._sinks:
            with contextlib.suppress(Exception):
                await sink.close()

    async def _work(self, sink: Sink) -> None:
        await self._start_sink(sink)
        wakeup = self._wakeups[sink.name]
        while not self._stopped.is_set():
            wait = self._options.poll
            try:
                if sink.name in await outbox_queries.disabled_sinks(self._engine):
                    handled = 0
                else:
                    handled, soonest = await self.deliver_batch(sink)
                    if soonest is not None:
                        wait = min(wait, max(0.0, (soonest - self._clock()).total_seconds()))
            except BridgeError as exc:
                log.warning("relay cannot reach the database", sink=sink.name, error=exc.message)
                handled = 0
            except Exception as exc:  # a bug must not end delivery for good: log, go on
                log.error("relay error", sink=sink.name, error_type=type(exc).__name__)
                handled = 0
            if handled >= self._options.batch or self._stopped.is_set():
                continue  # more may be waiting: no sleep while there is a backlog
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=wait)
            wakeup.clear()

    async def _start_sink(self, sink: Sink) -> None:
        # A broker that is down at startup must not stop the bridge: keep trying. A
        # permanent refusal (wrong password, an exchange of another type) is retried too,
        # slowly, since the operator may fix the broker without restarting the bridge.
        attempt = 0
        while not self._stopped.is_set():
            try:
                await sink.start()
                self._not_started.pop(sink.name, None)
                return
            except SinkError as exc:
                attempt += 1
                self._not_started[sink.name] = exc.message
                delay = self._options.policy.ceiling(attempt)
                log.warning("sink not started", sink=sink.name, error=exc.message, retry_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=delay)

    async def deliver_batch(self, sink: Sink) -> tuple[int, datetime | None]:
        """Claim and publish one batch; returns (rows handled, earliest retry time)."""
        opts = self._options
        claimed = await outbox.claim(
            self._engine, sink.name, opts.owner, now=self._clock(), lease=opts.lease,
            limit=opts.batch,
        )  # fmt: skip
        if not claimed:
            return 0, None
        # Rows of one batch belong to distinct records (see `claim`), so they may be
        # published concurrently without breaking any record's order.
        gate = asyncio.Semaphore(opts.concurrency)
        results = await asyncio.gather(*(self._publish(sink, row, gate) for row in claimed))
        now = self._clock()
        delivered = [row.delivery_id for row, error in zip(claimed, results, strict=True)
                     if error is None]  # fmt: skip
        failures = [
            self._failure(row, error, now)
            for row, error in zip(claimed, results, strict=True)
            if error is not None
        ]
        await outbox.mark_delivered(self._engine, delivered, now)
        await outbox.mark_failed(self._engine, failures)
        DELIVERIES.labels(sink.name, "delivered").inc(len(delivered))
        for failure in failures:
            outcome = "retry" if isinstance(failure.outcome, Retry) else "dead"
            DELIVERIES.labels(sink.name, outcome).inc()
        if any(isinstance(f.outcome, DeadLetter) and f.outcome.disable_sink for f in failures):
            reason = next(f.error for f in failures if isinstance(f.outcome, DeadLetter))
            await outbox_queries.set_sink_state(
                self._engine, sink.name, disabled=True, reason=reason, now=now
            )
            log.error("sink disabled: the subscriber is gone", sink=sink.name, reason=reason)
        retries = [f.outcome.at for f in failures if isinstance(f.outcome, Retry)]
        return len(claimed), min(retries, default=None)

    async def _publish(
        self, sink: Sink, row: Claimed, gate: asyncio.Semaphore
    ) -> BaseException | None:
        async with gate:
            started = time.perf_counter()
            try:
                await sink.publish(row.event)
            except Exception as exc:  # every failure is settled on the row, never lost
                return exc
            finally:
                PUBLISH_SECONDS.labels(sink.name).observe(time.perf_counter() - started)
        return None

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
        message = error.message if isinstance(error, BridgeError) else repr(error)
        return Failure(row.delivery_id, attempts, outcome, message)
