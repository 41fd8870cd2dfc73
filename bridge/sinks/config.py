"""Which sinks run, and with what options: `SinkConfig`, parsed from `BRIDGE_*` keys.

`BRIDGE_SINKS=pull,redis,nats` names the sinks; each option is one more `BRIDGE_*` key
(`BRIDGE_REDIS_URL`, `BRIDGE_WEBHOOK_SECRETS`, ...; the field name in upper case). The
`pull` sink is the database itself, served by the subscription API.

This module imports no broker client: settings are parsed without loading redis, aio-pika,
nats or httpx; `bridge.sinks.factory` loads an adapter only when a sink of its kind is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bridge.domain.envelope import DEFAULT_SUBJECT_PREFIX, check_subject_prefix
from bridge.domain.standard_webhooks import SigningSecret
from bridge.errors import BridgeError, ConfigurationError

SinkName = Literal["pull", "redis", "nats", "amqp", "webhook"]
PULL: Final = "pull"
ENV_PREFIX = "BRIDGE_"

# Adapter defaults live here, so the adapters and the settings agree without an import.
REDIS_DEFAULT_STREAM = "zoho-bridge.events"
REDIS_DEFAULT_MAXLEN = 100_000
NATS_DEFAULT_STREAM = "ZOHO_BRIDGE"
NATS_DEFAULT_DUPLICATE_WINDOW = 120.0  # JetStream's own default, in seconds
AMQP_DEFAULT_EXCHANGE = "zoho-bridge"
WEBHOOK_DEFAULT_TIMEOUT = 15.0  # the spec recommends giving receivers 15 to 30 seconds


class SinkConfig(BaseModel):
    """Every sink option; URLs are secrets because they may carry passwords."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sinks: tuple[SinkName, ...] = (PULL,)
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_stream: str = REDIS_DEFAULT_STREAM
    redis_maxlen: int = Field(REDIS_DEFAULT_MAXLEN, ge=1)
    nats_url: SecretStr = SecretStr("nats://127.0.0.1:4222")
    nats_stream: str = Field(NATS_DEFAULT_STREAM, pattern=r"^[A-Za-z0-9_-]+$")
    nats_subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    nats_duplicate_window: float = Field(NATS_DEFAULT_DUPLICATE_WINDOW, gt=0)
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    amqp_exchange: str = AMQP_DEFAULT_EXCHANGE
    amqp_routing_prefix: str = DEFAULT_SUBJECT_PREFIX
    amqp_require_route: bool = False
    webhook_url: str | None = None
    webhook_secrets: tuple[SecretStr, ...] = ()
    webhook_timeout: float = Field(WEBHOOK_DEFAULT_TIMEOUT, gt=0)
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
