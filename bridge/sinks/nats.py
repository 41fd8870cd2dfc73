"""NATS JetStream sink: each event published to `<prefix>.<source>.<module>.<operation>`.

The message carries the header `Nats-Msg-Id: <event id>`, so JetStream itself drops a
second copy published within the stream's duplicate window: a relay that crashed between
publishing and marking the row delivered does not produce a duplicate. Outside the
window, subscribers still dedupe on the envelope `id`.

Consumers create their own durable consumer on the stream, e.g.
`nats consumer add ZOHO_BRIDGE billing --filter 'zoho.*.Leads.>' --ack explicit --pull`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError

from bridge.domain.envelope import (
    CONTENT_TYPE,
    DEFAULT_SUBJECT_PREFIX,
    Message,
    check_subject_prefix,
    subject_for,
)
from bridge.sinks.base import (
    BROKER_BATCH,
    SinkError,
    SinkNotStarted,
    SinkPermanentError,
    SinkUnavailable,
    redact_url,
)
from bridge.sinks.config import NATS_DEFAULT_DUPLICATE_WINDOW, NATS_DEFAULT_STREAM

DEFAULT_STREAM = NATS_DEFAULT_STREAM
DEFAULT_DUPLICATE_WINDOW = NATS_DEFAULT_DUPLICATE_WINDOW

_log = logging.getLogger(__name__)


class JetStreamSink:
    """Publishes each event to JetStream and waits for the stream's acknowledgement.

    On `start` the stream is created when missing (file storage, subjects `<prefix>.>`,
    `duplicate_window` seconds of dedup); an existing stream is used as the operator left
    it. Publishing names the expected stream, so a subject captured by some other stream
    fails loudly instead of landing there.
    """

    default_batch = BROKER_BATCH

    def __init__(
        self,
        servers: str | list[str],
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
        timeout: float = 10.0,
        name: str = "nats",
    ) -> None:
        self.name = name
        self._servers = servers
        self._stream = stream
        self._prefix = check_subject_prefix(subject_prefix)
        self._duplicate_window = duplicate_window
        self._timeout = timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._acks: _AckInbox | None = None

    async def start(self) -> None:
        nc = Client()
        try:
            # Reconnect forever once connected, so a broker restart does not leave the sink
            # dead until the bridge restarts (publishes meanwhile time out as transient).
            # That setting also retries the first connect forever, hence the outer bound.
            await asyncio.wait_for(
                nc.connect(
                    self._servers,
                    name="zoho-bridge",
                    connect_timeout=max(1, int(self._timeout)),
                    max_reconnect_attempts=-1,
                    error_cb=_log_error,
                ),
                timeout=self._timeout,
            )
        except (NatsError, OSError, TimeoutError) as exc:
            await nc.close()
            shown = ", ".join(map(redact_url, _as_list(self._servers)))
            raise SinkUnavailable(f"nats {shown}: cannot connect: {exc!r}") from exc
        js = nc.jetstream(timeout=self._timeout)
        acks = _AckInbox(nc.new_inbox(), self._stream)
        try:
            await self._ensure_stream(js)
            await nc.subscribe(f"{acks.prefix}*", cb=acks.take)
        except NatsError as exc:
            await nc.close()
            raise _translate(exc, self._stream) from exc
        self._nc, self._js, self._acks = nc, js, acks

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self._stream)
        except NotFoundError:
            # Two replicas starting together may both get here; JetStream accepts the
            # second create because the configuration is identical.
            await js.add_stream(
                StreamConfig(
                    name=self._stream,
                    subjects=[f"{self._prefix}.>"],
                    storage=StorageType.FILE,
                    duplicate_window=self._duplicate_window,
                )
            )

    async def publish(self, message: Message) -> None:
        if self._js is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        headers = {"Nats-Msg-Id": message.id, "Content-Type": CONTENT_TYPE}
        try:
            await self._js.publish(
                subject_for(message, self._prefix),
                message.body,
                timeout=self._timeout,
                stream=self._stream,
                headers=headers,
            )
        except NatsError as exc:
            raise _translate(exc, self._stream) from exc

    async def publish_batch(self, messages: Sequence[Message]) -> list[SinkError | None]:
        """Every message sent at once, each with its own reply subject on the sink's ack
        inbox, then the stream's acks awaited together, up to `timeout`: a message without
        an ack by then counts as failed (a late ack is ignored; the republish it leads to
        is dropped by the stream's duplicate window).

        The acks come to one subscription made at `start`, not to a future per message
        (`publish_async`): its semaphore, timer and random token per message were most of
        the relay's own work on NATS."""
        if self._nc is None or self._acks is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        batch = _Batch(len(messages), self._stream)
        sent = 0
        try:
            async with asyncio.timeout(self._timeout):
                for message in messages:
                    reply = self._acks.expect(batch, sent)
                    try:
                        await self._nc.publish(
                            subject_for(message, self._prefix),
                            message.body,
                            reply=reply,
                            headers={
                                "Nats-Msg-Id": message.id,
                                "Content-Type": CONTENT_TYPE,
                                "Nats-Expected-Stream": self._stream,
                            },
                        )
                    except MaxPayloadError as exc:  # this message's fate, not the batch's
                        self._acks.withdraw(batch)
                        batch.results[sent] = _translate(exc, self._stream)
                    except BaseException:
                        self._acks.withdraw(batch)  # not sent: no ack will come
                        raise
                    sent += 1
        except (NatsError, TimeoutError) as exc:
            error = (
                _translate(exc, self._stream)
                if isinstance(exc, NatsError)
                else SinkUnavailable(f"nats stream {self._stream!r}: cannot send: {exc!r}")
            )
            batch.results[sent:] = [error] * (len(messages) - sent)
        try:
            if batch.waiting:  # the acks of what was sent
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(batch.done.wait(), self._timeout)
        finally:
            self._acks.forget(batch)
        return batch.results

    async def check(self) -> None:
        if self._nc is None or self._js is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        if not self._nc.is_connected:
            raise SinkUnavailable(f"nats stream {self._stream!r}: not connected (reconnecting)")
        try:
            # A JetStream API round trip: the server and JetStream answer, the stream is
            # there (created again if it was deleted meanwhile).
            await self._ensure_stream(self._js)
        except NatsError as exc:
            raise _translate(exc, self._stream) from exc

    async def close(self) -> None:
        nc, self._nc, self._js, self._acks = self._nc, None, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()


@dataclass(eq=False)
class _Batch:
    """One batch's results, filled in as its acks arrive."""

    size: int
    stream: str
    results: list[SinkError | None] = field(init=False)
    tokens: list[str] = field(default_factory=list)
    waiting: int = 0  # acks expected and not in yet
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set when `waiting` is 0

    def __post_init__(self) -> None:
        unacked = SinkUnavailable(f"nats stream {self.stream!r}: no ack in time")
        self.results = [unacked] * self.size


class _AckInbox:
    """Where JetStream's acks to a sink's batch publishes arrive: `<prefix><n>`, each n
    once, mapped to its batch and place until the ack comes or the batch gives up."""

    def __init__(self, inbox: str, stream: str) -> None:
        self.prefix = f"{inbox}."
        self._stream = stream
        self._numbers = itertools.count()
        self._waiting: dict[str, tuple[_Batch, int]] = {}

    def expect(self, batch: _Batch, index: int) -> str:
        token = str(next(self._numbers))
        self._waiting[token] = (batch, index)
        batch.tokens.append(token)
        batch.waiting += 1
        batch.done.clear()
        return self.prefix + token

    def withdraw(self, batch: _Batch) -> None:
        """Stop expecting the ack of the batch's last message (it was not sent)."""
        if self._waiting.pop(batch.tokens.pop(), None) is not None:
            batch.waiting -= 1
            if batch.waiting == 0:
                batch.done.set()

    def forget(self, batch: _Batch) -> None:
        for token in batch.tokens:
            self._waiting.pop(token, None)

    async def take(self, msg: Msg) -> None:
        found = self._waiting.pop(msg.subject[len(self.prefix) :], None)
        if found is None:
            return  # its batch stopped waiting
        batch, index = found
        batch.results[index] = self._outcome(msg)
        batch.waiting -= 1
        if batch.waiting == 0:
            batch.done.set()

    def _outcome(self, msg: Msg) -> SinkError | None:
        """None for a stream's ack, else why the message was not stored."""
        data = msg.data
        if data.startswith(b'{"stream":') and b'"error"' not in data:
            return None  # {"stream": …, "seq": …[, "duplicate": true]}
        if msg.headers and msg.headers.get("Status") == "503":
            return SinkUnavailable(f"nats stream {self._stream!r}: no responders")
        try:
            reply = json.loads(data)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
            try:
                APIError.from_error(reply["error"])
            except APIError as exc:
                return _translate(exc, self._stream)
            except (KeyError, TypeError):  # not the error object JetStream sends
                pass
        if isinstance(reply, dict) and "seq" in reply:
            return None
        shown = data[:200].decode(errors="replace")
        return SinkUnavailable(f"nats stream {self._stream!r}: unexpected reply {shown!r}")


def _as_list(servers: str | list[str]) -> list[str]:
    return [servers] if isinstance(servers, str) else servers


async def _log_error(exc: Exception) -> None:
    # nats-py's default logs a full traceback for every failed reconnect attempt.
    _log.warning("nats connection error: %r", exc)


def _translate(exc: NatsError, stream: str) -> SinkError:
    # An API error's str() carries JetStream's own description; a repr() would not.
    message = f"nats stream {stream!r}: {exc if isinstance(exc, APIError) else repr(exc)}"
    # A bad request (wrong expected stream, invalid config) or an over-size message will be
    # refused the same way every time; timeouts, no responders, a closed or reconnecting
    # connection and 503s pass, and hit every message alike: the sink is unavailable.
    if isinstance(exc, BadRequestError | MaxPayloadError):
        return SinkPermanentError(message)
    return SinkUnavailable(message)
