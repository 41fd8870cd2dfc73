"""Redis Streams sink: one `XADD` per event onto a length-bounded stream, a batch in one call.

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

import logging
from collections.abc import Sequence

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.typing import EncodableT, FieldT

from bridge.domain.envelope import Message
from bridge.sinks.base import (
    BROKER_BATCH,
    SinkError,
    SinkNotStarted,
    SinkPermanentError,
    SinkUnavailable,
)
from bridge.sinks.config import REDIS_DEFAULT_MAXLEN, REDIS_DEFAULT_STREAM

DEFAULT_STREAM = REDIS_DEFAULT_STREAM
DEFAULT_MAXLEN = REDIS_DEFAULT_MAXLEN

# Server replies that describe a passing state (loading a dump, failover, out of memory
# until eviction catches up) rather than a wrong command.
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM", "CLUSTERDOWN")

# A batch's XADDs as one command: one request and one reply for the batch, where a pipeline
# of XADDs costs the client a packed command and a parsed reply per event (half of the
# relay's CPU in a profile). ARGV: the trim (`~` or `=`), maxlen, then id, type, subject,
# envelope of each entry. Redis runs a script whole, without interleaving other clients;
# an error midway keeps the entries added before it (the relay publishes the batch again,
# consumers dedupe on `id`).
_ADD_ALL = """
for i = 3, #ARGV, 4 do
  local fields = {'id', ARGV[i], 'type', ARGV[i + 1], 'subject', ARGV[i + 2],
                  'envelope', ARGV[i + 3]}
  if ARGV[1] == '~' then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
  else
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', unpack(fields))
  end
end
return (#ARGV - 2) / 4
"""
_log = logging.getLogger(__name__)


class RedisStreamSink:
    """Publishes each event with `XADD <stream> MAXLEN ~ <maxlen> * id .. envelope ..`.

    `approximate=False` trims exactly, at some CPU cost on every XADD; the default `~` lets
    Redis trim whole internal nodes, so the stream may briefly hold a little over `maxlen`.
    """

    default_batch = BROKER_BATCH

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
        self._add_all: AsyncScript | None = None

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
        self._add_all = client.register_script(_ADD_ALL)

    async def publish(self, message: Message) -> None:
        if self._client is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        try:
            await self._client.xadd(
                self._stream, _fields(message), maxlen=self._maxlen, approximate=self._approximate
            )
        except redis_errors.RedisError as exc:
            raise _translate(exc, self._stream) from exc

    async def publish_batch(self, messages: Sequence[Message]) -> list[SinkError | None]:
        """All the XADDs in one script call: its reply is Redis's acceptance of every
        entry. An error (a connection lost, a refusal midway) fails the whole batch,
        whatever Redis may have added (it is added again later; consumers dedupe on `id`).

        Where scripts are not allowed, the XADDs go in one pipeline (no MULTI) instead, and
        each reply accepts or refuses its own entry."""
        if self._client is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        if self._add_all is not None:
            try:
                await self._add_all(keys=[self._stream], args=self._script_args(messages))
            except redis_errors.ResponseError as exc:
                if not _scripts_refused(exc):
                    return [_translate(exc, self._stream)] * len(messages)
                _log.warning(
                    "redis sink %r: scripts are refused (%s); pipelining XADDs instead",
                    self.name, exc,
                )  # fmt: skip
                self._add_all = None
            except redis_errors.RedisError as exc:
                return [_translate(exc, self._stream)] * len(messages)
            else:
                return [None] * len(messages)
        return await self._pipelined(messages)

    def _script_args(self, messages: Sequence[Message]) -> list[EncodableT]:
        args: list[EncodableT] = ["~" if self._approximate else "=", self._maxlen]
        for message in messages:
            args += (message.id, message.type, message.subject, message.body)
        return args

    async def _pipelined(self, messages: Sequence[Message]) -> list[SinkError | None]:
        assert self._client is not None
        pipe = self._client.pipeline(transaction=False)
        for message in messages:
            pipe.xadd(
                self._stream, _fields(message), maxlen=self._maxlen, approximate=self._approximate
            )
        try:
            replies = await pipe.execute(raise_on_error=False)
        except redis_errors.RedisError as exc:
            error = _translate(exc, self._stream)
            return [error] * len(messages)
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
        client, self._client, self._add_all = self._client, None, None
        if client is not None:
            await client.aclose()


def _fields(message: Message) -> dict[FieldT, EncodableT]:
    return {
        "id": message.id,
        "type": message.type,
        "subject": message.subject,
        "envelope": message.body,
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
    if isinstance(exc, redis_errors.ResponseError) and _code(exc) in _TRANSIENT_REPLIES:
        return SinkUnavailable(message)
    # WRONGTYPE, NOPERM, a bad password: retrying the same command will not help.
    return SinkPermanentError(message)


def _code(exc: redis_errors.RedisError) -> str:
    """The error code Redis answered with (`OOM`, `READONLY`, ...): redis-py takes it off
    the message of the errors it has a class for, and keeps it as `status_code`."""
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, str) else str(exc).split(" ", 1)[0]


def _scripts_refused(exc: redis_errors.ResponseError) -> bool:
    """Whether Redis does not let this client run scripts: an ACL user without
    @scripting, or EVALSHA renamed away."""
    return _code(exc) == "NOPERM" or str(exc).startswith(("unknown command", "ERR unknown"))
