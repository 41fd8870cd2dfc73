"""`serve`'s relay in a process of its own: `zoho-bridge relay`, started and watched by
`serve`, so that delivery gets a core (and an interpreter lock) of its own instead of a
share of the event loop that answers webhooks.

`serve` and the child share one socket pair. `serve` writes a byte to it after each commit
(the writer's `committed` hook), which wakes the child's relay as the hook woke a relay in
`serve`; the child sends back the port of a Prometheus endpoint on 127.0.0.1 holding the
relay's metrics, which `serve` appends to its own /metrics. When `serve` goes, however it
goes (kill -9 included), the socket closes and the child stops after the batch in hand; a
child that exits while `serve` runs is started again. The child reports its publish rates
to the database (`store.relay_rates`), where `/admin/status` reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.backoff import BackoffPolicy
from bridge.errors import BridgeError
from bridge.metrics import leave_relay_metrics
from bridge.settings import Settings
from bridge.store import outbox, relay_rates

log = structlog.get_logger(__name__)

RESTARTS = BackoffPolicy(base=1.0, cap=30.0)
# A child that ran this long before it exited is started again without delay growing.
SETTLED_SECONDS = 60.0


class RelayChild:
    """Runs `zoho-bridge relay` as a child of this process; `start`, `wake`, `stop`."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, clock: Callable[[], datetime], replica: str
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._clock = clock
        # The child's name in leases and reported rates: one per `serve`, kept by the
        # children it starts one after another, so that what a dead one held is known.
        self.name = f"{replica[:58]}/relay"
        self._proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._metrics_port: int | None = None
        self._watch: asyncio.Task[None] | None = None
        self._listen: asyncio.Task[None] | None = None
        self._exited: str | None = None  # why no child runs now, while one is awaited
        self._http = httpx.AsyncClient(timeout=2.0)

    async def start(self) -> None:
        leave_relay_metrics(to_child=True)
        await self._spawn()
        self._watch = asyncio.create_task(self._keep_running(), name="relay-child")

    def wake(self, *_: object) -> None:
        """New rows were committed: wake the child's relay (the writer's hook)."""
        if self._sock is not None:
            # A full socket buffer means wake-ups are already waiting to be read.
            with contextlib.suppress(OSError):
                self._sock.send(b"\0")

    def problems(self) -> list[str]:
        """Why the relay is not running, while `serve` starts another."""
        return [self._exited] if self._exited is not None else []

    async def metrics(self) -> bytes:
        """The child's relay metrics in Prometheus' text format (empty when unknown)."""
        if self._metrics_port is None:
            return b""
        try:
            answer = await self._http.get(f"http://127.0.0.1:{self._metrics_port}/metrics")
        except httpx.HTTPError:
            return b""
        return answer.content if answer.status_code == 200 else b""

    async def stop(self, grace: float = 15.0) -> None:
        """Close the socket (the child finishes its batch and exits), wait up to `grace`
        seconds, then kill it."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self._close_socket()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning("relay process did not stop in time: killed", pid=proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await self._forget_child(await proc.wait())
        await self._http.aclose()
        leave_relay_metrics(to_child=False)

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        env = os.environ | {
            "BRIDGE_DATABASE_URL": self._settings.database_url,
            "BRIDGE_REPLICA_ID": self.name,
        }
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "relay",
                "--serve-socket", str(theirs.fileno()),
                "--poll", str(self._settings.relay_poll_seconds),
                "--nice", str(self._settings.relay_nice),
                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
                # In `serve`'s session: with the kernel's autogroups (Linux's default for
                # desktop and terminal sessions), a session of its own would share the CPU
                # with `serve` as an equal, whatever its niceness. It ignores Ctrl-C: `serve`
                # stops it in order.
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock, self._metrics_port = ours, None
        self._listen = asyncio.create_task(self._read_port(ours))

    async def _read_port(self, sock: socket.socket) -> None:
        """The child's first line: `metrics PORT`, once its relay runs."""
        loop = asyncio.get_running_loop()
        received = b""
        while b"\n" not in received:
            try:
                data = await loop.sock_recv(sock, 256)
            except OSError:
                return
            if not data:
                return
            received += data
        words = received.split(b"\n", 1)[0].split()
        if len(words) == 2 and words[0] == b"metrics" and words[1].isdigit():
            self._metrics_port = int(words[1])
            self._exited = None

    def _close_socket(self) -> None:
        if self._listen is not None:
            self._listen.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._metrics_port = None

    async def _forget_child(self, code: int) -> None:
        """What the exited child held: its rows go back to be sent again at once (not
        after their lease), its reported rates no longer count."""
        try:
            released = await outbox.release_owner(
                self._engine, self.name, f"the relay process exited with code {code}"
            )
            await relay_rates.forget(self._engine, self.name)
        except BridgeError as exc:  # the leases run out in the end
            log.warning("cannot hand back the relay process's rows", error=exc.message)
            return
        if released:
            log.warning("rows the relay process held are sent again", count=released)

    async def _keep_running(self) -> None:
        failures = 0
        while True:
            assert self._proc is not None
            started = time.monotonic()
            code = await self._proc.wait()
            self._close_socket()
            failures = 1 if time.monotonic() - started > SETTLED_SECONDS else failures + 1
            delay = RESTARTS.ceiling(failures)
            self._exited = (
                f"the relay process exited with code {code} at {self._clock():%Y-%m-%d %H:%M:%S}Z; "
                f"starting another in {delay:.0f} s (rows it held are sent again)"
            )
            log.error("relay process exited: starting another", code=code,
                      retry_seconds=round(delay, 1))  # fmt: skip
            await self._forget_child(code)
            await asyncio.sleep(delay)
            while True:
                try:
                    await self._spawn()
                    break
                except OSError as exc:  # no memory, no processes left: keep trying
                    log.error("cannot start the relay process", error=str(exc))
                    await asyncio.sleep(RESTARTS.cap)
