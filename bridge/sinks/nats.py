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
import logging
from collections.abc import Sequence

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

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
        try:
            await self._ensure_stream(js)
        except NatsError as exc:
            await nc.close()
            raise _translate(exc, self._stream) from exc
        self._nc, self._js = nc, js

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
        """Every message sent at once (`publish_async`), then the stream's acks awaited
        together, up to `timeout`: a message without an ack by then counts as failed."""
        if self._js is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        results: list[SinkError | None] = [None] * len(messages)
        acks: dict[asyncio.Future[PubAck], int] = {}
        sent = 0
        try:
            # One deadline for the sends (the client holds at most 4,000 unacked publishes,
            # and a send waits for room), not one `wait_for` task per message.
            async with asyncio.timeout(self._timeout):
                for message in messages:
                    ack = await self._js.publish_async(
                        subject_for(message, self._prefix),
                        message.body,
                        stream=self._stream,
                        headers={"Nats-Msg-Id": message.id, "Content-Type": CONTENT_TYPE},
                    )
                    acks[ack] = sent
                    sent += 1
        except (NatsError, TimeoutError) as exc:
            error = (
                _translate(exc, self._stream)
                if isinstance(exc, NatsError)
                else SinkUnavailable(f"nats stream {self._stream!r}: cannot send: {exc!r}")
            )
            results[sent:] = [error] * (len(messages) - sent)
        if not acks:
            return results
        done, late = await asyncio.wait(acks, timeout=self._timeout)
        for ack in late:
            ack.cancel()  # frees its place among the client's pending publishes
            results[acks[ack]] = SinkUnavailable(
                f"nats stream {self._stream!r}: no ack within {self._timeout} s"
            )
        for ack in done:
            failure = ack.exception() if not ack.cancelled() else TimeoutError("cancelled")
            if failure is not None:
                results[acks[ack]] = (
                    _translate(failure, self._stream)
                    if isinstance(failure, NatsError)
                    else SinkUnavailable(f"nats stream {self._stream!r}: {failure!r}")
                )
        return results

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
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()


def _as_list(servers: str | list[str]) -> list[str]:
    return [servers] if isinstance(servers, str) else servers


async def _log_error(exc: Exception) -> None:
    # nats-py's default logs a full traceback for every failed reconnect attempt.
    _log.warning("nats connection error: %r", exc)


def _translate(exc: NatsError, stream: str) -> SinkError:
    message = f"nats stream {stream!r}: {exc!r}"
    # A bad request (wrong expected stream, invalid config) or an over-size message will be
    # refused the same way every time; timeouts, no responders, a closed or reconnecting
    # connection and 503s pass, and hit every message alike: the sink is unavailable.
    if isinstance(exc, BadRequestError | MaxPayloadError):
        return SinkPermanentError(message)
    return SinkUnavailable(message)
