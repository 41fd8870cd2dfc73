"""Pull subscriptions: the embedded default sink, read by consumers over HTTP.

A consumer reads envelopes after a cursor (long-polling when there are none yet) and
acknowledges the last one it has processed; the acked position is where the next read
starts by default and what the retention purge waits for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.credentials import matches_any, new_token, token_digest
from bridge.domain.events import EventFilter
from bridge.errors import BridgeError, InvalidInput, NotFound, VerificationFailed
from bridge.metrics import LONG_POLLS, LONG_POLLS_REFUSED
from bridge.services.lookup import TTLCache
from bridge.services.notify import CommitSignal, FilterKey
from bridge.services.sources import check_name
from bridge.store import events_envelopes
from bridge.store import subscriptions as store
from bridge.store.subscriptions import SubscriptionInfo

OPERATIONS = ("created", "updated", "deleted", "changed")
MAX_WAIT = 30.0
MAX_SOURCE, MAX_MODULE = 64, 100  # the events columns' sizes
# Long-polls re-read the database this often, to see events committed by other replicas.
RECHECK_SECONDS = 1.0
# Compared against when the name is unknown, so a wrong name costs the same as a wrong token.
_NO_SUCH_DIGEST = token_digest("no such subscription")
# What a consumer refused a long-poll is told to wait before asking again: long enough that
# a thousand refused consumers cost little, short next to a long-poll's own wait.
REFUSED_RETRY_AFTER = 5


class TooManyLongPolls(BridgeError):
    """Too many long-polls are waiting; try again later."""

    retry_after = REFUSED_RETRY_AFTER


@dataclass(frozen=True, slots=True)
class NewSubscription:
    info: SubscriptionInfo
    token: str


def _filter(sub: SubscriptionInfo) -> EventFilter:
    return EventFilter(source=sub.source, module=sub.module, operation=sub.operation)


def _key(sub: SubscriptionInfo) -> FilterKey:
    return (sub.source, sub.module, sub.operation)


@dataclass
class SubscriptionService:
    """Pull subscriptions: managed by operators, read and acknowledged by consumers.
    `signal` wakes this process's long-polls when events are committed or a cursor moves.

    Consumers' reads (`authenticate`, `read`) go through `reads`, an engine for
    one-statement reads (`database.create_read_engine`: on SQLite, `engine` itself).
    A subscription's name, token digest and filter are kept `cache_seconds`
    (BRIDGE_LOOKUP_CACHE_SECONDS, as sources are) for reads that name their cursor:
    removing one takes effect at once in this process and within that time in others.
    Its acknowledged position is always read afresh.

    Every long-poll reads the database again on each commit its filter matches and every
    second, so at most `max_waiting_per_subscription` of one subscription and
    `max_waiting` in all are held at once in this process; one more is refused at once
    (`TooManyLongPolls`)."""

    engine: AsyncEngine
    signal: CommitSignal
    clock: Callable[[], datetime]
    reads: AsyncEngine
    max_waiting_per_subscription: int = 10
    max_waiting: int = 100
    cache_seconds: float = 0.0
    # Shortest time between two answers of one subscription's long-polls (unless the
    # earlier was a full page): under a steady stream the events of several commits go out
    # in one answer (each answer costs the consumer's next request and its ack), while an
    # event after a quiet spell goes out at once.
    linger: float = 0.0
    _waiting: dict[str, int] = field(default_factory=dict, init=False)
    _answered: dict[str, float] = field(default_factory=dict, init=False)
    _waiting_total: int = field(default=0, init=False)
    _known: TTLCache[SubscriptionInfo] = field(init=False)

    def __post_init__(self) -> None:
        self._known = TTLCache(self.cache_seconds, self._load)

    async def _load(self, name: str) -> SubscriptionInfo | None:
        return await store.get(self.reads, name)

    async def add(
        self,
        name: str,
        *,
        source: str | None = None,
        module: str | None = None,
        operation: str | None = None,
        from_start: bool = False,
    ) -> NewSubscription:
        """Create a subscription; its token is returned here once and only its digest kept.

        It starts at the newest event (only what happens from now on) unless `from_start`.
        """
        check_name(name)
        if operation is not None and operation not in OPERATIONS:
            raise InvalidInput(f"operation must be one of {', '.join(OPERATIONS)}")
        if len(source or "") > MAX_SOURCE or len(module or "") > MAX_MODULE:
            raise InvalidInput(f"source is at most {MAX_SOURCE} characters, module {MAX_MODULE}")
        start = 0 if from_start else await store.latest_seq(self.engine)
        token = new_token()
        info = await store.create(
            self.engine, name=name, token_hash=token_digest(token), source=source,
            module=module, operation=operation, acked_seq=start, now=self.clock(),
        )  # fmt: skip
        return NewSubscription(info, token)

    async def all(self) -> list[SubscriptionInfo]:
        return await store.list_all(self.engine)

    async def remove(self, name: str) -> None:
        await store.remove(self.engine, name)
        self._known.invalidate(name)
        self._answered.pop(name, None)

    async def authenticate(
        self, name: str, presented: str, *, current: bool = True
    ) -> SubscriptionInfo:
        """The subscription `name` if `presented` is its token. With `current=False` it may
        come from the cache: its `acked_seq` may then be behind (for reads that give
        their own cursor)."""
        found = await (self._load(name) if current else self._known.get(name))
        digest = found.token_hash if found is not None else _NO_SUCH_DIGEST
        # matches_any compares in constant time; the same message for a wrong name or token.
        if not matches_any(presented, [digest]) or found is None:
            raise VerificationFailed("unknown subscription or wrong token")
        return found

    async def read(
        self, sub: SubscriptionInfo, *, after: int | None, limit: int, wait: float
    ) -> tuple[list[bytes], int]:
        """Envelopes (each as its UTF-8 JSON, ready to send) after `after` (default: the
        acked position), waiting up to `wait` seconds for the first one. Returns them and
        the cursor to pass as `after` next.

        A read that may wait is a long-poll: it raises `TooManyLongPolls` before reading
        anything when the caps are reached (reading first would cost what the caps save)."""
        cursor = sub.acked_seq if after is None else after
        wait = min(max(wait, 0.0), MAX_WAIT)
        if not wait:
            found, last = await events_envelopes.envelope_page(
                self.reads, _filter(sub), after_seq=cursor, limit=limit
            )
        else:
            self._enter(sub.name)
            try:
                found, last = await self._wait_for_events(sub, cursor, limit, wait)
            finally:
                self._leave(sub.name)
        return found, (cursor if last is None else last)

    async def _wait_for_events(
        self, sub: SubscriptionInfo, cursor: int, limit: int, wait: float
    ) -> tuple[list[bytes], int | None]:
        deadline = time.monotonic() + wait
        while True:
            await self._pace(sub.name, deadline)
            signal = self.signal.signal(_key(sub))
            found, last = await events_envelopes.envelope_page(
                self.reads, _filter(sub), after_seq=cursor, limit=limit
            )
            now = time.monotonic()
            if found:
                if len(found) < limit:
                    self._answered[sub.name] = now
                else:  # a full page: more may be waiting, so the next read goes at once
                    self._answered.pop(sub.name, None)
                return found, last
            if now >= deadline:
                return found, last
            await self.signal.wait(min(deadline - now, RECHECK_SECONDS), signal)

    async def _pace(self, name: str, deadline: float) -> None:
        """Wait until `linger` has passed since this subscription's last answer."""
        now = time.monotonic()
        answered = self._answered.get(name)
        if answered is None:
            return
        gap = min(self.linger - (now - answered), deadline - now)
        if gap > 0:
            await asyncio.sleep(gap)

    def waiting(self) -> dict[str, int]:
        """Long-polls held now in this process, by subscription."""
        return dict(self._waiting)

    def _enter(self, name: str) -> None:
        mine = self._waiting.get(name, 0)
        if mine >= self.max_waiting_per_subscription or self._waiting_total >= self.max_waiting:
            scope = (
                f"{mine} for subscription {name!r} (BRIDGE_LONG_POLLS_PER_SUBSCRIPTION)"
                if mine >= self.max_waiting_per_subscription
                else f"{self._waiting_total} in all (BRIDGE_LONG_POLLS_TOTAL)"
            )
            LONG_POLLS_REFUSED.inc()
            raise TooManyLongPolls(
                f"too many long-polls are waiting ({scope}); ask again after "
                f"{REFUSED_RETRY_AFTER} s, or read without `wait`"
            )
        self._waiting[name] = mine + 1
        self._waiting_total += 1
        LONG_POLLS.inc()

    def _leave(self, name: str) -> None:
        left = self._waiting.get(name, 1) - 1
        if left > 0:
            self._waiting[name] = left
        else:
            self._waiting.pop(name, None)
        self._waiting_total -= 1
        LONG_POLLS.dec()

    async def ack(self, name: str, seq: int) -> int:
        """The consumer processed everything up to `seq`: move its cursor forward only."""
        return await self._move_cursor(name, seq, forward_only=True)

    async def rewind(self, name: str, seq: int) -> int:
        """Move the cursor back (or forward) to `seq`: reads resume after it."""
        if seq < 0:
            raise InvalidInput("seq must be 0 or more")
        if await store.get(self.engine, name) is None:
            raise NotFound(f"no subscription named {name!r}")
        stored = await self._move_cursor(name, seq, forward_only=False)
        self.signal([])  # long-polls waiting on this subscription re-read at once
        return stored

    async def _move_cursor(self, name: str, seq: int, *, forward_only: bool) -> int:
        """Never past the newest event, whose successors the consumer has not seen. The
        newest this process committed is known without asking the database (an ack is
        most often of events just read); a seq beyond it may be another replica's."""
        latest = self.signal.latest_seq
        if seq > latest:
            latest = await store.latest_seq(self.engine)
        if seq > latest:
            raise InvalidInput(f"seq {seq} is past the newest event ({latest})")
        return await store.set_cursor(
            self.engine, name, seq, self.clock(), forward_only=forward_only
        )
