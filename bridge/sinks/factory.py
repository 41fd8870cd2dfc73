"""`build_sinks`: one adapter per configured push sink.

Each adapter module (and its broker client) is imported only when a sink of its kind is
configured: a bridge with only the `pull` sink never loads redis, aio-pika or nats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.errors import ConfigurationError
from bridge.sinks.base import Sink
from bridge.sinks.config import PULL, SinkConfig, SinkName

if TYPE_CHECKING:
    import httpx

__all__ = ["PULL", "SinkConfig", "SinkName", "build_sinks"]


def build_sinks(
    config: SinkConfig, *, http_client: httpx.AsyncClient | None = None, concurrency: int = 32
) -> list[Sink]:
    """One unstarted adapter per configured sink except `pull`, in configuration order.

    `http_client` is the app's shared client, required when the webhook sink is on;
    `concurrency` bounds the webhook sink's requests in flight (`BRIDGE_RELAY_CONCURRENCY`).
    """
    built: list[Sink] = []
    timeout = config.broker_timeout
    for name in config.sinks:
        if name == "redis":
            from bridge.sinks import redis

            built.append(
                redis.RedisStreamSink(
                    config.redis_url.get_secret_value(),
                    stream=config.redis_stream,
                    maxlen=config.redis_maxlen,
                    timeout=timeout,
                )
            )
        elif name == "nats":
            from bridge.sinks import nats

            built.append(
                nats.JetStreamSink(
                    config.nats_url.get_secret_value(),
                    stream=config.nats_stream,
                    subject_prefix=config.nats_subject_prefix,
                    duplicate_window=config.nats_duplicate_window,
                    timeout=timeout,
                )
            )
        elif name == "amqp":
            from bridge.sinks import amqp

            built.append(
                amqp.AmqpSink(
                    config.amqp_url.get_secret_value(),
                    exchange=config.amqp_exchange,
                    routing_prefix=config.amqp_routing_prefix,
                    require_route=config.amqp_require_route,
                    timeout=timeout,
                )
            )
        elif name == "webhook":
            if http_client is None or config.webhook_url is None:
                raise ConfigurationError("the webhook sink needs an HTTP client and a URL")
            from bridge.sinks import webhook

            built.append(
                webhook.WebhookSink(
                    config.webhook_url,
                    config.signing_secrets(),
                    http_client,
                    timeout=config.webhook_timeout,
                    concurrency=concurrency,
                )
            )
    return built
