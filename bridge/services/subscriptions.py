"""Pull subscriptions: the embedded default sink, read by consumers over HTTP.

A consumer reads envelopes after a cursor (long-polling when there are none yet) and
acknowledges the last one it has processed; the acked position is where the next read
starts by default and what the retention purge waits for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.credentials import matches_any, new_token, token_digest
from bridge.domain.envelope import build_envelope
from bridge.errors import InvalidInput, VerificationFailed
from bridge.services.admin import NAME_PATTERN
from bridge.services.notify import NewEvents
from bridge.store import event_queries
from bridge.store import subscriptions as store

OPERATIONS = ("created", "updated", "deleted", "changed")
MAX_WAIT = 30.0
MAX_SOURCE, MAX_MODULE = 64, 100  # the events columns' sizes
# Long-polls re-read the database this often, to see events committed by other replicas.
RECHECK_SECONDS = 1.0
# Compared against when the name is unknown, so a wrong name costs the same as a wrong token.
_NO_SUCH_DIGEST = token_digest("no such subscription")


@dataclass(frozen=True, slots=True)
class NewSubscription:
    info: store.SubscriptionInfo
    token: str


async def add(
    engine: AsyncEngine,
    *,
    name: str,
    source: str | None = None,
    module: str | None = None,
    operation: str | None = None,
    from_start: bool = False,
    now: datetime,
) -> NewSubscription:
    """Create a subscription; its token is returned here once and only its digest kept.

    It starts at the newest event (only what happens from now on) unless `from_start`.
    """
    if not NAME_PATTERN.match(name):
        raise InvalidInput("name must be 1-64 characters: letters, digits, '_', '.', '-'")
    if operation is not None and operation not in OPERATIONS:
        raise InvalidInput(f"operation must be one of {', '.join(OPERATIONS)}")
    if len(source or "") > MAX_SOURCE or len(module or "") > MAX_MODULE:
        raise InvalidInput(f"source is at most {MAX_SOURCE} characters, module {MAX_MODULE}")
    start = 0 if from_start else await store.latest_seq(engine)
    token = new_token()
    info = await store.create(
        engine, name=name, token_hash=token_digest(token), source=source, module=module,
        operation=operation, acked_seq=start, now=now,
    )  # fmt: skip
    return NewSubscription(info, token)


async def authenticate(engine: AsyncEngine, name: str, presented: str) -> store.SubscriptionInfo:
    found = await store.get(engine, name)
    digest = found.token_hash if found is not None else _NO_SUCH_DIGEST
    # matches_any compares in constant time; the same message for a wrong name or token.
    if not matches_any(presented, [digest]) or found is None:
        raise VerificationFailed("unknown subscription or wrong token")
    return found


def _filter(sub: store.SubscriptionInfo) -> event_queries.EventFilter:
    return event_queries.EventFilter(source=sub.source, module=sub.module, operation=sub.operation)


async def read(
    engine: AsyncEngine,
    notifier: NewEvents,
    sub: store.SubscriptionInfo,
    *,
    after: int | None,
    limit: int,
    wait: float,
) -> tuple[list[dict[str, Any]], int]:
    """Envelopes after `after` (default: the acked position), waiting up to `wait` seconds
    for the first one. Returns them and the cursor to pass as `after` next time."""
    cursor = sub.acked_seq if after is None else after
    deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT)
    while True:
        signal = notifier.signal()
        found = await event_queries.list_events(engine, _filter(sub), after_seq=cursor, limit=limit)
        left = deadline - time.monotonic()
        if found or left <= 0:
            break
        await notifier.wait(min(left, RECHECK_SECONDS), signal)
    envelopes = [build_envelope(e) for e in found]
    return envelopes, (found[-1].seq if found else cursor)


async def move_cursor(
    engine: AsyncEngine, name: str, seq: int, now: datetime, *, forward_only: bool
) -> int:
    """Ack (`forward_only`) or rewind; never past the newest event, whose successors the
    consumer has not seen."""
    latest = await store.latest_seq(engine)
    if seq > latest:
        raise InvalidInput(f"seq {seq} is past the newest event ({latest})")
    return await store.set_cursor(engine, name, seq, now, forward_only=forward_only)
