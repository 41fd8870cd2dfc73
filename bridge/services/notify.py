"""`CommitSignal`: in-process "new events were committed" for long-polling pull consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from bridge.domain.events import Event


class CommitSignal:
    """Wakes every waiter when the writer commits events (its `committed` hook).

    Only commits made by this process are seen; long-polls also re-read the database on a
    short interval so events written by another replica arrive too.
    """

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.latest_seq = 0

    def __call__(self, inserted: Sequence[Event]) -> None:
        if inserted:
            self.latest_seq = max(self.latest_seq, inserted[-1].seq)
        # Swap in a fresh Event so waiters woken now do not see this one as set forever.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def signal(self) -> asyncio.Event:
        """Take this before reading the database, then `wait` on it: a commit landing
        between the read and the wait still wakes the waiter."""
        return self._changed

    async def wait(self, seconds: float, signal: asyncio.Event | None = None) -> bool:
        """True if events were committed (since `signal` was taken) within `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((signal or self._changed).wait(), seconds)
            return True
        return False
