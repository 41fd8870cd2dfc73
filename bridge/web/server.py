"""uvicorn's httptools protocol with the two limits it lacks, for `serve`.

uvicorn bounds a request's headers only with h11 (`h11_max_incomplete_event_size`) and
times a connection out only once it is idle after a response (`timeout_keep_alive`).
With httptools (its default and ours: much faster) a client may send headers forever,
one byte at a time or a megabyte at a time, and hold a file descriptor and the memory for
as long as it likes; one that connects and sends nothing is never timed out either.

Here a request's head (request line and headers) must arrive within
BRIDGE_HEADER_TIMEOUT_SECONDS of its first byte, or of connecting (408, then the
connection is closed), and may not grow past `max_head_bytes` (431, closed). The precise
header limit (BRIDGE_MAX_HEADER_BYTES, on the header names and values) is checked by the
app (web/front.py), which records refused webhooks; the bound here is looser (it counts
the request line and the framing too) and only keeps a head that never ends from
growing. The body's deadline is the app's (web/bodies.py: 408, recorded); the one here,
a few seconds later, closes the connection of a request whose body never ends on a route
that answered without reading it (uvicorn would otherwise go on reading it, and every
byte postpones its keep-alive timeout).

The limits are class attributes, set by `configure` in each process that serves (`serve`,
and each worker's app factory): uvicorn creates one protocol object per connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

# httptools comes with uvicorn[standard], a dependency.
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from bridge.domain import jsonx
from bridge.settings import Settings
from bridge.web.errors import CODES

HEAD_SLACK = 16 * 1024  # the request line (a long query string) and per-header framing
BODY_SLACK = 5.0  # at most, seconds after the app's body deadline: the app answers first


def configure(settings: Settings) -> None:
    """Set this process's limits from `settings`."""
    BoundedHttpToolsProtocol.header_timeout = settings.header_timeout_seconds
    seconds = settings.body_timeout_seconds
    BoundedHttpToolsProtocol.body_timeout = seconds + min(BODY_SLACK, seconds)
    BoundedHttpToolsProtocol.max_head_bytes = 2 * settings.max_header_bytes + HEAD_SLACK


_NEVER = object()  # no request completed yet on this connection


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One connection: uvicorn's, plus a deadline and a size bound on each request head,
    and a deadline on each body.

    The phase of the request being received is read from uvicorn's own state after each
    read, rather than from more parser callbacks (each overridden one costs a Python call
    per request): `scope` is replaced when a request begins, `cycle` made for it when its
    head is complete, and `_completed` marks the scope whose request was received whole.
    """

    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 15.0 + BODY_SLACK
    max_head_bytes: ClassVar[int] = 2 * 16 * 1024 + HEAD_SLACK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._completed: object = _NEVER  # the scope of the last request received whole
        self._watched: object = None  # the scope of the request the deadline is for
        self._in_body = False  # whether that deadline is for its body (else its head)
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)  # a client that connects and sends nothing, too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_complete(self) -> None:
        self._completed = self.scope
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        scope = self.scope
        if scope is self._completed:  # only whole requests so far: the usual case
            if self._deadline is not None:
                self._disarm()
            return
        if self.transport.is_closing():
            return
        cycle = self.cycle
        in_body = scope is not None and cycle is not None and cycle.scope is scope
        if scope is not self._watched or in_body is not self._in_body:  # a new phase
            self._disarm()
            self._watched, self._in_body, self._head_bytes = scope, in_body, 0
        if not in_body:
            self._head_bytes += len(data)  # and maybe the start of its body: an upper bound
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, f"request headers are larger than {self.max_head_bytes} bytes")
                return
        if self._deadline is None:
            self._arm(self.body_timeout if in_body else self.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_body:  # the app has answered (or will have, at its own deadline)
            self.transport.close()
        else:  # in a head, or nothing sent since connecting
            self._refuse(408, "request headers were not received in time")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no answer under way
            body = jsonx.dumps({"error": CODES[status], "message": message})
            content = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                content += [name, b": ", value, b"\r\n"]
            content += [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
            self.transport.write(b"".join(content))
        self.transport.close()
