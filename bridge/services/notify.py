"""`CommitSignal`: in-process "new events were committed" for long-polling pull consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from bridge.domain.events import Event

# What a waiting long-poll wants: (source, module, operation), None meaning any.
FilterKey = tuple[str | None, str | None, str | None]
ANY: FilterKey = (None, None, None)


def _matches(key: FilterKey, event: Event) -> bool:
    source, module, operation = key
    return (
        (source is None or event.source == source)
        and (module is None or event.module == module)
        and (operation is None or event.operation == operation)
    )


class CommitSignal:
    """Wakes the waiters an inserted event may interest when the writer commits events (its
    `committed` hook); called with no events, wakes every waiter.

    Waiters are grouped by filter, and a commit wakes only the groups one of its events
    matches: every woken long-poll reads the database again, and a thousand consumers
    of other modules re-reading on every commit took the webhook path from thousands of
    answers a second to hundreds. Only commits made by this process are seen; long-polls
    also re-read the database on a short interval so events written by another replica
    arrive too.
    """

    def __init__(self) -> None:
        self._groups: dict[FilterKey, asyncio.Event] = {}
        self.latest_seq = 0

    def __call__(self, inserted: Sequence[Event]) -> None:
        if inserted:
            self.latest_seq = max(self.latest_seq, inserted[-1].seq)
        if not self._groups:
            return
        woken = [
            key
            for key in self._groups
            if not inserted or any(_matches(key, event) for event in inserted)
        ]
        # A woken group's Event is dropped, so the next waiter of that filter gets a fresh
        # one and does not see this commit as set forever.
        for key in woken:
            self._groups.pop(key).set()

    def signal(self, key: FilterKey = ANY) -> asyncio.Event:
        """Take this before reading the database, then `wait` on it: a commit landing
        between the read and the wait still wakes the waiter."""
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = asyncio.Event()
        return found

    async def wait(self, seconds: float, signal: asyncio.Event | None = None) -> bool:
        """True if matching events were committed (since `signal` was taken) within
        `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((signal or self.signal()).wait(), seconds)
            return True
        return False
