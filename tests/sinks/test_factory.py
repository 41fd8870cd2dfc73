"""Sink configuration: parsing, validation, and which adapters get built."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from bridge.domain.standard_webhooks import SigningSecret
from bridge.errors import ConfigurationError
from bridge.sinks import Sink
from bridge.sinks.amqp import AmqpSink
from bridge.sinks.factory import SinkConfig, build_sinks
from bridge.sinks.nats import JetStreamSink
from bridge.sinks.redis import RedisStreamSink
from bridge.sinks.webhook import WebhookSink

OLD = SigningSecret(b"o" * 32).serialize()
NEW = SigningSecret(b"n" * 32).serialize()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def test_defaults_are_the_pull_sink_only() -> None:
    config = SinkConfig()
    assert config.sinks == ("pull",)
    assert build_sinks(config) == []


def test_from_environ_reads_bridge_keys() -> None:
    config = SinkConfig.from_environ(
        {
            "BRIDGE_SINKS": " pull, Redis ,nats",
            "BRIDGE_REDIS_URL": "redis://:pw@cache:6379/2",
            "BRIDGE_REDIS_MAXLEN": "5000",
            "BRIDGE_NATS_SUBJECT_PREFIX": "acme.zoho",
            "BRIDGE_DATABASE_URL": "sqlite+aiosqlite:///x.db",  # someone else's key
            "PATH": "/usr/bin",
        }
    )
    assert config.sinks == ("pull", "redis", "nats")
    assert config.redis_url.get_secret_value() == "redis://:pw@cache:6379/2"
    assert config.redis_maxlen == 5000
    assert config.nats_subject_prefix == "acme.zoho"


def test_secrets_and_urls_never_print() -> None:
    config = SinkConfig(
        sinks=("webhook", "amqp"),
        amqp_url="amqp://user:hunter2@mq/",  # type: ignore[arg-type]
        webhook_url="https://example.com/hook",
        webhook_secrets=f"{OLD} {NEW}",  # type: ignore[arg-type]
    )
    shown = repr(config) + str(config)
    assert "hunter2" not in shown
    assert OLD.removeprefix("whsec_") not in shown


def test_webhook_secrets_split_on_spaces_or_commas() -> None:
    config = SinkConfig.from_environ(
        {
            "BRIDGE_SINKS": "webhook",
            "BRIDGE_WEBHOOK_URL": "https://example.com/hook",
            "BRIDGE_WEBHOOK_SECRETS": f"{OLD}, {NEW}",
        }
    )
    assert config.signing_secrets() == (SigningSecret.parse(OLD), SigningSecret.parse(NEW))


@pytest.mark.parametrize(
    "values",
    [
        {"sinks": "pull,kafka"},
        {"sinks": "redis,redis"},
        {"sinks": "webhook", "webhook_secrets": OLD},
        {"sinks": "webhook", "webhook_url": "https://example.com/hook"},
        {"sinks": "webhook", "webhook_url": "https://x/h", "webhook_secrets": "whsec_short"},
        {"sinks": "webhook", "webhook_url": "ftp://x/h", "webhook_secrets": OLD},
        {"nats_subject_prefix": "zoho.>"},
        {"amqp_routing_prefix": "zoho.#"},
        {"nats_stream": "has.dots"},
        {"redis_maxlen": "0"},
        {"redis_ur": "redis://typo"},
    ],
)
def test_bad_configuration_is_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        SinkConfig.model_validate(values)


async def test_builds_one_unstarted_adapter_per_sink_in_order(http: httpx.AsyncClient) -> None:
    config = SinkConfig(
        sinks=("webhook", "pull", "amqp", "nats", "redis"),
        webhook_url="https://example.com/hook",
        webhook_secrets=(OLD,),  # type: ignore[arg-type]
    )
    sinks = build_sinks(config, http_client=http)
    assert [type(sink) for sink in sinks] == [WebhookSink, AmqpSink, JetStreamSink, RedisStreamSink]
    assert [sink.name for sink in sinks] == ["webhook", "amqp", "nats", "redis"]
    assert all(isinstance(sink, Sink) for sink in sinks)


def test_webhook_needs_the_shared_http_client() -> None:
    config = SinkConfig(
        sinks=("webhook",),
        webhook_url="https://example.com/hook",
        webhook_secrets=(OLD,),  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigurationError, match="HTTP client"):
        build_sinks(config)
