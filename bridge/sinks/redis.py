"""Redis Streams sink: one `XADD` per event onto a length-bounded stream, pipelined per batch.

Each entry has the fields `id`, `type`, `subject` (ASCII, for filtering without parsing)
and `envelope` (the CloudEvents JSON, identical to every other sink).

Consuming with a consumer group, so several workers share the stream and nothing is lost
when one dies::

    XGROUP CREATE zoho-bridge.events billing $ MKSTREAM
    XREADGROUP GROUP billing worker-1 COUNT 100 BLOCK 5000 STREAMS zoho-bridge.events >
    XACK zoho-bridge.events billing <entry-id> ...
    XAUTOCLAIM zoho-bridge.events billing worker-2 60000 0-0   # take over a dead worker's

The stream is trimmed with `MAXLEN ~ <maxlen>`: a consumer group that falls further behind
than that loses the oldest entries, so size `maxlen` for the longest outage you accept (the
pull subscription and replay remain for recovery). Delivery is at-least-once (a reply lost
after a successful XADD means the relay adds it again): dedupe on `id`.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from bridge.domain.envelope import envelope_bytes, event_type
from bridge.domain.events import StoredEvent
from bridge.sinks.base import SinkError, SinkNotStarted, SinkPermanentError, SinkUnavailable
from bridge.sinks.config import REDIS_DEFAULT_MAXLEN, REDIS_DEFAULT_STREAM

DEFAULT_STREAM = REDIS_DEFAULT_STREAM
DEFAULT_MAXLEN = REDIS_DEFAULT_MAXLEN

# Server replies that describe a passing state (loading a dump, failover, out of memory
# until eviction catches up) rather than a wrong command.
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM", "CLUSTERDOWN")


class RedisStreamSink:
    """Publishes each event with `XADD <stream> MAXLEN ~ <maxlen> * id .. envelope ..`.

    `approximate=False` trims exactly, at some CPU cost on every XADD; the default `~` lets
    Redis trim whole internal nodes, so the stream may briefly hold a little over `maxlen`.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int = DEFAULT_MAXLEN,
        approximate: bool = True,
        timeout: float = 10.0,
        name: str = "redis",
    ) -> None:
        self.name = name
        self._url = url
        self._stream = stream
        self._maxlen = maxlen
        self._approximate = approximate
        self._timeout = timeout
        self._client: Redis | None = None

    async def start(self) -> None:
        client = Redis.from_url(
            self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
        )
        try:
            await client.ping()
        except redis_errors.RedisError as exc:
            await client.aclose()
            raise _translate(exc, self._stream) from exc
        self._client = client

    async def publish(self, event: StoredEvent) -> None:
        if self._client is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        try:
            await self._client.xadd(
                self._stream, _fields(event), maxlen=self._maxlen, approximate=self._approximate
            )
        except redis_errors.RedisError as exc:
            raise _translate(exc, self._stream) from exc

    async def publish_batch(self, events: Sequence[StoredEvent]) -> list[SinkError | None]:
        """All the XADDs in one pipeline (no MULTI): one write and one read for the batch.

        Each reply is Redis's acceptance of its entry; a connection lost midway fails
        the whole batch as unavailable, whatever Redis may have added (it is added again
        later, and consumers dedupe on `id`)."""
        if self._client is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(
                self._stream, _fields(event), maxlen=self._maxlen, approximate=self._approximate
            )
        try:
            replies = await pipe.execute(raise_on_error=False)
        except redis_errors.RedisError as exc:
            error = _translate(exc, self._stream)
            return [error] * len(events)
        return [
            _translate(reply, self._stream) if isinstance(reply, redis_errors.RedisError) else None
            for reply in replies
        ]

    async def check(self) -> None:
        if self._client is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        try:
            await self._client.ping()
        except redis_errors.RedisError as exc:
            raise _translate(exc, self._stream) from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _fields(event: StoredEvent) -> dict[FieldT, EncodableT]:
    return {
        "id": event.id,
        "type": event_type(event),
        "subject": f"{event.module}/{event.record_id}",
        "envelope": envelope_bytes(event),
    }


def _translate(exc: redis_errors.RedisError, stream: str) -> SinkError:
    message = f"redis stream {stream!r}: {exc}"
    if isinstance(exc, redis_errors.AuthenticationError):
        # A subclass of ConnectionError, but a wrong password will not fix itself.
        return SinkPermanentError(message)
    # Refused or lost connections, timeouts, and a server loading, failing over or out of
    # memory: every command fails alike until Redis is back, so the sink is unavailable.
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return SinkUnavailable(message)
    if isinstance(exc, redis_errors.ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES):
        return SinkUnavailable(message)
    # WRONGTYPE, NOPERM, a bad password: retrying the same command will not help.
    return SinkPermanentError(message)
