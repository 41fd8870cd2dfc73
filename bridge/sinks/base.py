"""The sink interface the outbox relay calls, and the errors it tells retry decisions by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from bridge.domain.envelope import Message
from bridge.errors import BridgeError

# A broker confirms a batch of 500 in a few milliseconds; bigger batches spread the
# claim's and the settlement's cost over more events (measured: a relay process on SQLite
# kept up with 3,000 events/s at 500, fell behind at 2,000/s at 100).
BROKER_BATCH = 500


class SinkError(BridgeError):
    """The event could not be published to a sink.

    A subscriber that answered sets `status_code` (its HTTP status) and `response` (the
    start of its body); both go into the delivery's attempt history."""

    status_code: int | None = None
    response: bytes | None = None


class SinkTransientError(SinkError):
    """The sink is unavailable for now; publishing the same event again may succeed.

    `retry_after` is the delay in seconds the other side asked for (HTTP `Retry-After`),
    or None; the relay uses it as the minimum wait before the next attempt.
    """

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SinkUnavailable(SinkTransientError):
    """The sink as a whole cannot be reached (connection refused, broker down or
    reconnecting): every event would fail the same way for now.

    The relay pauses such a sink and probes it, instead of retrying each event on its own
    ladder, and does not count the attempt against the event's retry budget.
    """


class SinkPermanentError(SinkError):
    """The sink refused the event for good; retrying the same event cannot succeed."""


class SinkNotStarted(SinkError):
    """The sink was used before `start` or after `close`."""


class SubscriberGone(SinkPermanentError):
    """The subscriber answered 410 Gone: it wants no more events, disable the sink."""


@runtime_checkable
class Sink(Protocol):
    """One destination for events; the relay owns its lifecycle.

    `start` opens connections (and declares streams or exchanges); `publish` delivers one
    event and returns only once the broker or subscriber has accepted it (confirm, ack or
    2xx), so the relay may then mark the outbox row delivered; `close` releases everything.
    Delivery is at-least-once: subscribers dedupe on the envelope `id`.
    """

    name: str
    # Rows the relay claims at once for this sink unless `BRIDGE_RELAY_BATCH` is set.
    default_batch: int

    async def start(self) -> None:
        """Connect and declare what the sink needs. Raises SinkTransientError if unreachable."""
        ...

    async def publish(self, message: Message) -> None:
        """Deliver one event's message, or raise SinkTransientError / SinkPermanentError.

        SinkUnavailable (a SinkTransientError) says the sink cannot be reached at all, as
        opposed to a failure of this one event."""
        ...

    async def check(self) -> None:
        """Cheaply check that the sink can be reached now (after `start`); raises
        SinkUnavailable if not. The relay calls it to probe a paused sink when it has no
        event to try."""
        ...

    async def close(self) -> None:
        """Release connections; safe to call twice or without `start`."""
        ...


@runtime_checkable
class BatchSink(Sink, Protocol):
    """A sink that publishes a batch in one go (pipelined, acks gathered per batch).

    The relay hands it the rows of one claim: events of distinct records, so their order
    among themselves does not matter.
    """

    async def publish_batch(self, messages: Sequence[Message]) -> list[SinkError | None]:
        """Publish every message; for each, in order, None once the broker or subscriber
        has accepted it (confirm, ack or 2xx) or the error it failed with. Never raises
        for one event's failure: an event without a confirmation gets an error, so the
        relay never marks it delivered."""
        ...


def redact_url(url: str) -> str:
    """`url` without user info, query or fragment: fit for error messages and logs.

    Broker URLs carry passwords and subscriber URLs often carry a token in the query.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
