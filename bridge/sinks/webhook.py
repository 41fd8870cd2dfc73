"""HTTP push sink: POST the envelope to a subscriber URL, signed per Standard Webhooks.

Status handling follows the Standard Webhooks spec: 2xx delivered; 410 Gone means the
subscriber wants nothing more (permanent, disable the sink); 408, 429 and 5xx are
transient, with `Retry-After` honoured; any other 4xx and any redirect are permanent,
because the same request will meet the same answer. Transport failures are transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from bridge.domain.envelope import CONTENT_TYPE, Message
from bridge.domain.standard_webhooks import SigningSecret, signature_headers
from bridge.errors import ConfigurationError
from bridge.sinks.base import (
    SinkError,
    SinkPermanentError,
    SinkTransientError,
    SinkUnavailable,
    SubscriberGone,
    redact_url,
)
from bridge.sinks.config import WEBHOOK_DEFAULT_TIMEOUT

DEFAULT_TIMEOUT = WEBHOOK_DEFAULT_TIMEOUT
USER_AGENT = "zoho-bridge"
# Requests in flight to one subscriber (`BRIDGE_RELAY_CONCURRENCY` in `serve`).
DEFAULT_CONCURRENCY = 32
_TRANSIENT_4XX = frozenset({408, 429})
# The start of a refusal's body kept in the attempt history (redacted there).
RESPONSE_EXCERPT_BYTES = 512
_DRAIN_BYTES = 65_536  # an answer longer than this is not read to its end


def subscriber_client(
    concurrency: int = DEFAULT_CONCURRENCY, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """The HTTP client webhook sinks share: HTTP/2 with a subscriber that offers it (over
    TLS, by ALPN: one connection carries every request in flight), HTTP/1.1 otherwise,
    with as many connections kept alive as requests may be in flight (httpx keeps 20 by
    default: at 32 in flight, 12 connections were opened and closed again per round)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(http2=True, limits=limits, verify=verify)


class WebhookSink:
    """POSTs each event to `url` through the injected (shared) `httpx.AsyncClient`.

    Every secret in `secrets` signs each request, so the subscriber can rotate: add the new
    secret here, let the subscriber switch, then drop the old one. `clock` returns unix
    seconds for `webhook-timestamp`; tests pass a fixed one.
    """

    # Published within the lease: ceil(100 / 32) rounds of a 15 s timeout is 60 s of the
    # default 120 s. A bigger batch needs a longer `BRIDGE_RELAY_LEASE_SECONDS`.
    default_batch = 100

    def __init__(
        self,
        url: str,
        secrets: Sequence[SigningSecret],
        client: httpx.AsyncClient,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        name: str = "webhook",
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if not secrets:
            raise ConfigurationError(f"sink {name!r}: at least one signing secret is needed")
        self.name = name
        self._url = url
        self._shown_url = redact_url(url)
        self._secrets = tuple(secrets)
        self._client = client
        self._timeout = timeout
        self._clock = clock
        self._concurrency = concurrency

    async def start(self) -> None:
        """Nothing to open: the HTTP client belongs to the app's lifespan."""

    async def publish(self, message: Message) -> None:
        body = message.body
        now = self._clock()
        headers = signature_headers(self._secrets, message.id, int(now), body)
        headers["content-type"] = f"{CONTENT_TYPE}; charset=utf-8"
        headers["user-agent"] = USER_AGENT
        try:
            # stream(): the status is all we need, and a subscriber answering with an
            # endless body must not hold the relay or fill its memory.
            async with self._client.stream(
                "POST",
                self._url,
                content=body,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                status, retry_after = response.status_code, response.headers.get("retry-after")
                # Read to the end (a bounded excerpt) even when accepted: a response closed
                # unread takes its connection with it, and the next request opens a new one.
                answer = await _first_bytes(response)
        except httpx.UnsupportedProtocol as exc:
            raise SinkPermanentError(f"webhook {self._shown_url}: {exc}") from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing was sent: the subscriber cannot be reached at all, whatever the event.
            raise SinkUnavailable(f"webhook {self._shown_url}: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise SinkTransientError(f"webhook {self._shown_url}: {exc!r}") from exc
        error = _status_error(self._shown_url, status, retry_after, now)
        if error is not None:
            error.status_code, error.response = status, answer or None
            raise error

    async def publish_batch(self, messages: Sequence[Message]) -> list[SinkError | None]:
        """POST the batch with at most `concurrency` requests in flight to the subscriber,
        over the client's kept-alive connections."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(message: Message) -> SinkError | None:
            async with gate:
                try:
                    await self.publish(message)
                except SinkError as exc:
                    return exc
            return None

        return list(await asyncio.gather(*map(one, messages)))

    async def check(self) -> None:
        """A TCP connection to the subscriber's host and port, closed at once: no request
        is sent (Standard Webhooks defines none to probe with)."""
        parts = urlsplit(self._url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, port), self._timeout
            )
        except (OSError, TimeoutError) as exc:
            raise SinkUnavailable(f"webhook {self._shown_url}: {exc!r}") from exc
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def close(self) -> None:
        """Nothing to close: the HTTP client belongs to the app's lifespan."""


async def _first_bytes(response: httpx.Response, limit: int = RESPONSE_EXCERPT_BYTES) -> bytes:
    """The start of an answer's body, for the attempt history (`limit` bytes), read to its
    end if that comes within `_DRAIN_BYTES` (so the connection can serve the next request;
    a longer body is cut off with its connection), and a body that breaks off keeps what
    came."""
    kept, read = bytearray(), 0
    try:
        async for chunk in response.aiter_raw():
            kept += chunk[: limit - len(kept)]
            read += len(chunk)
            if read >= _DRAIN_BYTES:
                break
    except httpx.HTTPError:
        pass
    return bytes(kept)


def _status_error(url: str, status: int, retry_after: str | None, now: float) -> SinkError | None:
    if 200 <= status < 300:
        return None
    if status == 410:
        return SubscriberGone(f"webhook {url}: 410 Gone, the subscriber asked for no more events")
    if status in _TRANSIENT_4XX or status >= 500:
        delay = parse_retry_after(retry_after, now) if retry_after else None
        return SinkTransientError(f"webhook {url}: HTTP {status}", retry_after=delay)
    if 300 <= status < 400:
        return SinkPermanentError(f"webhook {url}: HTTP {status} redirect; update the URL")
    return SinkPermanentError(f"webhook {url}: HTTP {status}")


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP-date), else None.

    `now` is unix seconds, used to turn a date into a delay; dates in the past give 0.
    """
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # RFC 9110 dates are always GMT; email.utils returns them naive for "-0000".
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)
