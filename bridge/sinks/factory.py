"""Which sinks run, and with what options: `SinkConfig` and `build_sinks`.

`BRIDGE_SINKS=pull,redis,nats` names the sinks; each option is one more `BRIDGE_*` key
(`BRIDGE_REDIS_URL`, `BRIDGE_WEBHOOK_SECRETS`, ...; the field name in upper case). The
`pull` sink is the database itself, served by the subscription API: it is accepted here
and builds no adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bridge.domain.envelope import DEFAULT_SUBJECT_PREFIX, check_subject_prefix
from bridge.domain.standard_webhooks import SigningSecret
from bridge.errors import BridgeError, ConfigurationError
from bridge.sinks import amqp, nats, redis, webhook
from bridge.sinks.base import Sink

SinkName = Literal["pull", "redis", "nats", "amqp", "webhook"]
PULL: Final = "pull"
ENV_PREFIX = "BRIDGE_"


class SinkConfig(BaseModel):
    """Every sink option; URLs are secrets because they may carry passwords."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sinks: tuple[SinkName, ...] = (PULL,)
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_stream: str = redis.DEFAULT_STREAM
    redis_maxlen: int = Field(redis.DEFAULT_MAXLEN, ge=1)
    nats_url: SecretStr = SecretStr("nats://127.0.0.1:4222")
    nats_stream: str = Field(nats.DEFAULT_STREAM, pattern=r"^[A-Za-z0-9_-]+$")
    nats_subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    nats_duplicate_window: float = Field(nats.DEFAULT_DUPLICATE_WINDOW, gt=0)
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    amqp_exchange: str = amqp.DEFAULT_EXCHANGE
    amqp_routing_prefix: str = DEFAULT_SUBJECT_PREFIX
    amqp_require_route: bool = False
    webhook_url: str | None = None
    webhook_secrets: tuple[SecretStr, ...] = ()
    webhook_timeout: float = Field(webhook.DEFAULT_TIMEOUT, gt=0)
    broker_timeout: float = Field(10.0, gt=0)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SinkConfig:
        """The config from the `BRIDGE_<FIELD>` keys of `environ`; other keys are ignored."""
        values = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in environ.items()
            if key.upper().startswith(ENV_PREFIX)
            and key[len(ENV_PREFIX) :].lower() in cls.model_fields
        }
        return cls.model_validate(values)

    @field_validator("sinks", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple) and len(set(value)) != len(value):
            raise ValueError("a sink is named twice")
        return value

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        # Space or comma separated, as in the webhook-signature header during rotation.
        if isinstance(value, str):
            return value.replace(",", " ").split()
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return value

    @field_validator("nats_subject_prefix", "amqp_routing_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        try:
            return check_subject_prefix(value)
        except ConfigurationError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _check_webhook(self) -> SinkConfig:
        if "webhook" in self.sinks:
            if not self.webhook_url:
                raise ValueError("the webhook sink needs webhook_url")
            if not self.webhook_secrets:
                raise ValueError("the webhook sink needs at least one webhook secret")
        try:
            self.signing_secrets()
        except BridgeError as exc:
            raise ValueError(f"webhook_secrets: {exc.message}") from None
        return self

    def signing_secrets(self) -> tuple[SigningSecret, ...]:
        """The parsed `whsec_...` webhook secrets."""
        return tuple(SigningSecret.parse(s.get_secret_value()) for s in self.webhook_secrets)


def build_sinks(config: SinkConfig, *, http_client: httpx.AsyncClient | None = None) -> list[Sink]:
    """One unstarted adapter per configured sink except `pull`, in configuration order.

    `http_client` is the app's shared client, required when the webhook sink is on.
    """
    built: list[Sink] = []
    timeout = config.broker_timeout
    for name in config.sinks:
        if name == "redis":
            built.append(
                redis.RedisStreamSink(
                    config.redis_url.get_secret_value(),
                    stream=config.redis_stream,
                    maxlen=config.redis_maxlen,
                    timeout=timeout,
                )
            )
        elif name == "nats":
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
            built.append(
                webhook.WebhookSink(
                    config.webhook_url,
                    config.signing_secrets(),
                    http_client,
                    timeout=config.webhook_timeout,
                )
            )
    return built
