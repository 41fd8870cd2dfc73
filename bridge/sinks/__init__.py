"""Sinks: where stored events are published (Redis Streams, NATS, RabbitMQ, HTTP push)."""

from bridge.sinks.base import (
    Sink,
    SinkError,
    SinkNotStarted,
    SinkPermanentError,
    SinkTransientError,
    SinkUnavailable,
    SubscriberGone,
)

__all__ = [
    "Sink",
    "SinkError",
    "SinkNotStarted",
    "SinkPermanentError",
    "SinkTransientError",
    "SinkUnavailable",
    "SubscriberGone",
]
