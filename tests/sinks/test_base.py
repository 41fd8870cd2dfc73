"""Sink error helpers."""

from __future__ import annotations

import pytest

from bridge.sinks import SinkPermanentError, SinkTransientError, SubscriberGone
from bridge.sinks.base import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://user:pw@host:4222", "nats://host:4222"),
        ("https://hooks.example.com/in?token=abc#x", "https://hooks.example.com/in"),
        ("amqp://guest:guest@127.0.0.1/", "amqp://127.0.0.1/"),
    ],
)
def test_redact_url_drops_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_error_hierarchy_and_retry_after() -> None:
    assert issubclass(SubscriberGone, SinkPermanentError)
    assert SinkTransientError("x", retry_after=3.0).retry_after == 3.0
    assert SinkTransientError().retry_after is None
    assert (
        str(SinkPermanentError())
        == "The sink refused the event for good; retrying the same event cannot succeed."
    )
