"""HTTP push specifics against a real local subscriber: signatures, status handling, retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import formatdate

import httpx
import pytest

from bridge.domain.envelope import envelope_bytes, message_for
from bridge.domain.standard_webhooks import SigningSecret, verify
from bridge.sinks import SinkPermanentError, SinkTransientError, SubscriberGone
from bridge.sinks.webhook import WebhookSink, parse_retry_after

from .conftest import EventFactory, Subscriber, SubscriberServer
from .support import closed_port_socket

NOW = 1_718_115_953.625
OLD = SigningSecret(b"o" * 32)
NEW = SigningSecret(b"n" * 32)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def sink_for(url: str, http: httpx.AsyncClient, **options: float) -> WebhookSink:
    return WebhookSink(url, [OLD, NEW], http, clock=lambda: NOW, **options)


async def test_request_is_signed_with_every_secret(
    subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    event = make_event()
    await sink_for(subscriber.url, http).publish(message_for(event))
    [request] = subscriber.received
    assert request.body == envelope_bytes(event)
    assert request.headers["webhook-id"] == event.id
    assert request.headers["webhook-timestamp"] == "1718115953"
    assert request.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    assert request.headers["user-agent"] == "zoho-bridge"
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    # Mid-rotation the subscriber may hold either secret alone.
    verify([NEW], request.headers, request.body, now=int(NOW))
    verify([OLD], request.headers, request.body, now=int(NOW))


async def test_retry_after_seconds_is_exposed(
    subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.answers.append((503, {"Retry-After": "120"}))
    with pytest.raises(SinkTransientError) as caught:
        await sink_for(subscriber.url, http).publish(message_for(make_event()))
    assert caught.value.retry_after == 120.0


async def test_retry_after_date_on_429(
    subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.answers.append((429, {"Retry-After": formatdate(NOW + 90, usegmt=True)}))
    with pytest.raises(SinkTransientError) as caught:
        await sink_for(subscriber.url, http).publish(message_for(make_event()))
    assert caught.value.retry_after == pytest.approx(90, abs=1)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses(
    status: int, subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.answers.append((status, {}))
    with pytest.raises(SinkTransientError, match=str(status)) as caught:
        await sink_for(subscriber.url, http).publish(message_for(make_event()))
    assert caught.value.retry_after is None


async def test_410_means_the_subscriber_is_gone(
    subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.answers.append((410, {}))
    with pytest.raises(SubscriberGone):
        await sink_for(subscriber.url, http).publish(message_for(make_event()))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_other_4xx_are_permanent(
    status: int, subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.answers.append((status, {}))
    with pytest.raises(SinkPermanentError, match=str(status)) as caught:
        await sink_for(subscriber.url, http).publish(message_for(make_event()))
    assert not isinstance(caught.value, SubscriberGone)


async def test_redirects_are_not_followed(
    subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.answers.append((307, {"Location": subscriber.url}))
    with pytest.raises(SinkPermanentError, match="redirect"):
        await sink_for(subscriber.url, http).publish(message_for(make_event()))
    assert len(subscriber.received) == 1


async def test_slow_subscriber_times_out_as_transient(
    subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.delay = 1.0
    with pytest.raises(SinkTransientError, match="Timeout"):
        await sink_for(subscriber.url, http, timeout=0.2).publish(message_for(make_event()))


async def test_refused_then_delivered_once_the_subscriber_listens(
    http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    sock = closed_port_socket()
    subscriber = Subscriber()
    host, port = sock.getsockname()
    sink = sink_for(f"http://{host}:{port}/hook", http)
    event = make_event()
    with pytest.raises(SinkTransientError, match="ConnectError"):
        await sink.publish(message_for(event))
    async with SubscriberServer(subscriber, sock):
        await sink.publish(message_for(event))
    sock.close()
    [request] = subscriber.received
    assert request.body == envelope_bytes(event)


async def test_unsupported_scheme_is_permanent(
    http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    with pytest.raises(SinkPermanentError):
        await sink_for("ftp://127.0.0.1/hook", http).publish(message_for(make_event()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW - 30, usegmt=True), 0.0),
        ("-5", None),
        ("1.5", None),
        ("²", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    parsed = parse_retry_after(value, NOW)
    if expected is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(expected, abs=1)


async def test_errors_do_not_show_url_credentials(
    subscriber: Subscriber, http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    subscriber.answers.append((500, {}))
    url = subscriber.url.replace("http://", "http://user:hunter2@") + "?token=t0ps3cret"
    with pytest.raises(SinkTransientError) as caught:
        await sink_for(url, http).publish(message_for(make_event()))
    assert "hunter2" not in str(caught.value)
    assert "t0ps3cret" not in str(caught.value)
    assert subscriber.received[0].headers["authorization"].startswith("Basic ")
