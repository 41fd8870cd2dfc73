"""RabbitMQ (AMQP 0-9-1) sink: persistent messages on a durable topic exchange.

The routing key is `<prefix>.<source>.<module>.<operation>` (the NATS subject), so a queue
bound with `zoho.*.Leads.*` receives every Leads change. `message_id` is the event id and
`content_type` is `application/cloudevents+json` (CloudEvents AMQP binding, structured
mode). Publisher confirms are on: `publish` returns once RabbitMQ has taken responsibility
for the message (written to disk for durable queues), and a nack is a transient failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import cast

import aio_pika
from aio_pika import DeliveryMode
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.connection import make_url
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    AuthenticationError,
    ChannelClosed,
    ChannelInvalidStateError,
    DeliveryError,
    ProbableAuthenticationError,
)
from aiormq import Channel as UnderlayChannel
from pamqp.commands import Basic

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
    SinkTransientError,
    SinkUnavailable,
)
from bridge.sinks.config import AMQP_DEFAULT_EXCHANGE

DEFAULT_EXCHANGE = AMQP_DEFAULT_EXCHANGE
Properties = Basic.Properties


class AmqpSink:
    """Publishes each event to a durable topic exchange with publisher confirms.

    With `require_route=True` a message no queue is bound for is returned by RabbitMQ and
    reported as transient, so it is retried (and finally dead-lettered) instead of being
    dropped; leave it False when some routing keys are meant to go nowhere.
    """

    default_batch = BROKER_BATCH

    def __init__(
        self,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        routing_prefix: str = DEFAULT_SUBJECT_PREFIX,
        require_route: bool = False,
        timeout: float = 10.0,
        name: str = "amqp",
    ) -> None:
        self.name = name
        self._url = url
        self._exchange_name = exchange
        self._prefix = check_subject_prefix(routing_prefix)
        self._require_route = require_route
        self._timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        # A robust connection reconnects (and re-declares the exchange) after a broker
        # restart; the first connection is not retried, hence the bound. It is built here
        # rather than by connect_robust so a failed first attempt can be closed: left open,
        # it is closed from __del__ with no loop, an "un-awaited coroutine" warning.
        connection = aio_pika.RobustConnection(make_url(self._url))
        try:
            await asyncio.wait_for(connection.connect(timeout=self._timeout), self._timeout)
        except (AuthenticationError, ProbableAuthenticationError) as exc:
            await _close_quietly(connection)
            raise SinkPermanentError(f"amqp: login refused: {exc!r}") from exc
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            await _close_quietly(connection)
            raise SinkUnavailable(f"amqp: cannot connect: {exc!r}") from exc
        try:
            channel: AbstractChannel = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._exchange = await channel.declare_exchange(
                self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        except ChannelClosed as exc:
            # e.g. PRECONDITION_FAILED: an exchange of that name exists with another type.
            await connection.close()
            raise SinkPermanentError(f"amqp exchange {self._exchange_name!r}: {exc!r}") from exc
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            await connection.close()
            raise SinkUnavailable(f"amqp exchange {self._exchange_name!r}: {exc!r}") from exc
        self._connection, self._channel = connection, channel

    async def publish(self, message: Message) -> None:
        [error] = await self.publish_batch([message])
        if error is not None:
            raise error

    async def publish_batch(self, messages: Sequence[Message]) -> list[SinkError | None]:
        """Every message sent at once on the channel, then the confirms awaited together
        (RabbitMQ confirms many deliveries with one ack frame): each event's result is
        its own confirm, nack or return.

        Straight to the channel under aio-pika's exchange (aiormq's `basic_publish`), with
        `wait=False`: a message does not wait for the one before it to reach the socket
        (they are written in order all the same), only for its confirm."""
        if self._exchange is None or self._channel is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        try:
            if self._channel.is_closed:
                raise ChannelInvalidStateError(f"{self._channel!r} closed")
            channel = cast("UnderlayChannel", await self._channel.get_underlay_channel())
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            return [self._unavailable(exc)] * len(messages)
        if not messages:
            return []
        # One deadline for the batch, confirms included: aiormq bounds only the sending
        # (which it holds while the broker blocks publishers, a memory or disk alarm), not
        # the wait for a confirm that never comes (a broker gone silent, until heartbeats
        # notice).
        sends = [asyncio.ensure_future(self._send(channel, message)) for message in messages]
        try:
            _, late = await asyncio.wait(sends, timeout=self._timeout)
        finally:
            # The late ones (or every one, if this wait was cancelled); a done one stays
            # as it was. aiormq ignores a confirm that comes after all.
            for send in sends:
                send.cancel()
        unconfirmed = SinkUnavailable(
            f"amqp exchange {self._exchange_name!r}: no confirm within {self._timeout} s"
        )
        return [unconfirmed if send in late else _as_sink_error(send.exception()) for send in sends]

    async def _send(self, channel: UnderlayChannel, message: Message) -> None:
        properties = Properties(
            content_type=CONTENT_TYPE,
            headers={},
            delivery_mode=DeliveryMode.PERSISTENT.value,
            priority=0,
            message_id=message.id,
            message_type=message.type,
            app_id="zoho-bridge",
        )
        try:
            await channel.basic_publish(
                message.body,
                exchange=self._exchange_name,
                routing_key=subject_for(message, self._prefix),
                properties=properties,
                mandatory=self._require_route,
                timeout=self._timeout,
                wait=False,
            )
        except DeliveryError as exc:
            # A nack, or (with require_route) a message returned as unroutable: this
            # message's fate, while the broker itself answers.
            raise SinkTransientError(f"amqp exchange {self._exchange_name!r}: {exc!r}") from exc
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> SinkUnavailable:
        # Closed channels, broken connections and a broker that blocks publishers (a
        # memory or disk alarm): every message fails alike until the robust connection
        # has recovered.
        return SinkUnavailable(f"amqp exchange {self._exchange_name!r}: {exc!r}")

    async def check(self) -> None:
        if self._connection is None:
            raise SinkNotStarted(f"sink {self.name!r} is not started")
        try:
            # The robust connection sets this again once it has reconnected and declared
            # the exchange anew.
            await asyncio.wait_for(self._connection.ready(), self._timeout)
        except TimeoutError as exc:
            raise SinkUnavailable(f"amqp: not connected (reconnecting): {exc!r}") from exc

    async def close(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        self._channel = None
        if connection is not None:
            await connection.close()


def _as_sink_error(result: BaseException | None) -> SinkError | None:
    if result is None or isinstance(result, SinkError):
        return result
    if isinstance(result, Exception):
        return SinkTransientError(f"amqp: {result!r}")
    raise result  # CancelledError and the like are not one event's failure


async def _close_quietly(connection: AbstractRobustConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.close()
