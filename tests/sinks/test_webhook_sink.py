"""HTTP push specifics against a real local subscriber: signatures, status handling, retry."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

import httpx
import hypercorn
import pytest
import trustme
from hypercorn.asyncio import serve

from bridge.domain.envelope import envelope_bytes, message_for
from bridge.domain.standard_webhooks import SigningSecret, verify
from bridge.sinks import SinkPermanentError, SinkTransientError, SinkUnavailable, SubscriberGone
from bridge.sinks.webhook import WebhookSink, parse_retry_after, subscriber_client

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


async def test_a_subscriber_offering_http2_gets_every_request_on_one_connection(
    make_event: EventFactory,
) -> None:
    # A TLS subscriber that offers h2 by ALPN, as most HTTPS servers and proxies do.
    ca = trustme.CA()
    seen: list[tuple[str, tuple[str, int] | None]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["http_version"], scope["client"]))
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sock = closed_port_socket()
    port = sock.getsockname()[1]
    sock.close()
    with ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.tempfile() as pem:
        config = hypercorn.Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.certfile = config.keyfile = pem
        stop = asyncio.Event()
        server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
        context = ssl.create_default_context()
        ca.configure_trust(context)
        client = subscriber_client(32, verify=context)
        try:
            sink = WebhookSink(f"https://127.0.0.1:{port}/hook", [NEW], client)
            for _ in range(100):  # until the server listens
                with contextlib.suppress(SinkUnavailable):
                    await sink.check()
                    break
                await asyncio.sleep(0.05)
            results = await sink.publish_batch([message_for(make_event()) for _ in range(64)])
        finally:
            await client.aclose()
            stop.set()
            await server
    assert results == [None] * 64
    assert {version for version, _ in seen} == {"2"}
    assert len({peer for _, peer in seen}) == 1  # 64 requests in flight, one connection


async def test_an_endless_accepted_answer_does_not_hold_the_relay(
    http: httpx.AsyncClient, make_event: EventFactory
) -> None:
    # Answers are read to their end so connections are reused, but only so far.
    async def endless(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
                await writer.drain()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sink = sink_for(f"http://127.0.0.1:{port}/hook", http)
        await asyncio.wait_for(sink.publish(message_for(make_event())), 5)
    finally:
        server.close()
