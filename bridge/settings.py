"""The one settings object, built from an injected environment mapping.

Nothing else in the bridge reads `os.environ`: the CLI passes the process environment in,
tests pass a dict. Secrets are `SecretStr`, so they never print.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bridge.sinks.config import SinkConfig

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./bridge.db"
ENV_PREFIX = "BRIDGE_"
MIN_ADMIN_TOKEN = 16
DATABASE_FORMS = (
    "postgresql+asyncpg://user:password@host:5432/database or sqlite+aiosqlite:///path/to/file.db"
)
# `BRIDGE_*` names read by the CLI alone, and prefixes the test suite uses.
OTHER_VARIABLES = ("BRIDGE_SUBSCRIPTION_TOKEN",)
OTHER_PREFIXES = ("BRIDGE_TEST_",)


class Settings(BaseSettings):
    """Every `BRIDGE_*` setting. Field `x` is read from `BRIDGE_X`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    host: str = Field("127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `serve` listens on.")
    public_url: str | None = Field(
        None, description="URL at which Zoho reaches this bridge, e.g. https://hooks.example.com"
    )
    url: str | None = Field(
        None,
        description="For the CLI: a running bridge, e.g. http://127.0.0.1:8000; status, replay, "
        "outbox, requests and channel renewal then go through its admin API "
        "(with BRIDGE_ADMIN_TOKEN) and its sinks.",
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for /admin; the admin API is off without it."
    )
    secret_key: SecretStr | None = Field(
        None, description="Key that encrypts stored secrets (`zoho-bridge keygen` makes one)."
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest webhook body accepted.")
    rejected_body_bytes: int = Field(
        4096, ge=0,
        description="How much of an unverified rejected request's body (and headers) is kept.",
    )  # fmt: skip
    rejected_keep: int = Field(
        10_000, ge=100, description="How many rejected requests are kept (oldest dropped)."
    )
    lookup_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long sources, channels and pull subscriptions are cached in memory.",
    )
    writer_max_batch: int = Field(
        256, ge=1, le=5000, description="Most deliveries committed together in one transaction."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="SQLite fsync policy; FULL survives power loss, NORMAL only crashes."
    )
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connection pool size.")
    zoho_timeout: float = Field(30.0, gt=0, description="Seconds before a call to Zoho times out.")
    scheduler: bool = Field(
        True, description="Run scheduled work (channel renewal) in `serve`; off for tests."
    )
    replica_id: str | None = Field(
        None, description="Name of this replica in leases (default: host name and process id)."
    )
    channel_lifetime_hours: float = Field(
        167.0, gt=1, le=168, description="Expiry asked for a channel: Zoho allows 7 days at most."
    )
    channel_renew_after_hours: float = Field(
        24.0, gt=0, description="Renew a managed channel once this much of its life has passed."
    )
    channel_alert_hours: float = Field(
        24.0, gt=0, description="Flag a channel whose expiry is this close without a renewal."
    )
    channel_token_grace_hours: float = Field(
        1.0, ge=0, description="How long a rotated-out channel token is still accepted."
    )
    channel_rotate_every: int = Field(
        0, ge=0, description="Rotate a channel's token every N renewals (0: only on request)."
    )
    channel_check_seconds: float = Field(
        60.0, gt=0, description="How often the renewal job looks for due channels."
    )
    channel_reconcile_minutes: float = Field(
        15.0, gt=0, description="How often managed channels are compared with Zoho's list."
    )
    channel_lease_seconds: float = Field(
        300.0, gt=0, description="How long a replica holds a channel while renewing it."
    )
    sink_config: SinkConfig = Field(
        default_factory=SinkConfig,
        description="The sinks (BRIDGE_SINKS=pull,redis,...) and their BRIDGE_* options.",
    )
    relay_poll_seconds: float = Field(
        1.0, gt=0, description="How often the relay looks for due rows when not woken."
    )
    relay: bool = Field(
        True,
        description="Deliver to the push sinks from `serve` itself; false when separate "
        "`zoho-bridge relay` processes do (the outbox is still written with every event).",
    )
    relay_process: bool = Field(
        True,
        description="`serve` delivers from a child process of its own (`zoho-bridge relay`, "
        "started, woken and watched by `serve`): delivery gets a core of its own instead of "
        "a share of the event loop answering webhooks. false: on that event loop. With "
        "--workers above 1, each worker relays on its own loop.",
    )
    relay_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="How much nicer (lower CPU priority) than `serve` its relay process runs: "
        "when the cores are busy, answering webhooks comes first and delivery takes what is "
        "left (the backlog and its age show in /admin/status). 0: the same priority.",
    )
    relay_batch: int | None = Field(
        None,
        ge=1,
        le=5000,
        description="Outbox rows claimed at once per sink; unset: 500 for Redis, NATS and "
        "RabbitMQ, 100 for HTTP push (a batch must be published within the lease).",
    )
    relay_linger_seconds: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Shortest time between two claims of a sink while it has no backlog: "
        "events of a steady stream are gathered into fewer, bigger batches; an event after "
        "a quiet spell goes out at once.",
    )
    relay_concurrency: int = Field(32, ge=1, description="Publishes in flight per sink.")
    relay_lease_seconds: float = Field(
        # Longer than a batch can take: ceil(batch / concurrency) rounds of a publish timeout
        # (4 x 15 s by default), or another replica would send rows still queued here.
        120.0,
        gt=0,
        description="How long a claimed row is held before another relay may take it.",
    )
    sink_probe_seconds: float = Field(
        1.0, gt=0,
        description="First wait before probing a sink that failed as a whole (doubles, jittered).",
    )  # fmt: skip
    sink_probe_cap_seconds: float = Field(
        10.0, gt=0, description="Longest wait between two probes of a sink that is down."
    )
    health_check_seconds: float = Field(
        5.0, gt=0,
        description="How often `serve` checks that the database takes writes and which "
        "connections need re-authorisation (metrics, and a log line when that changes).",
    )  # fmt: skip
    long_polls_per_subscription: int = Field(
        10, ge=1, description="Long-polls of one subscription waiting at once; 429 beyond."
    )
    long_polls_total: int = Field(
        100, ge=1, description="Long-polls waiting at once in one process; 429 beyond."
    )
    long_poll_linger_seconds: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Shortest time between two answers of one subscription's long-polls "
        "(reads with `wait`): under a steady stream, events of several commits go out in one "
        "answer (fewer requests and acks for serve to handle); an event after a quiet spell, "
        "a read without `wait` and the read after a full page go out at once.",
    )
    retry_base_seconds: float = Field(1.0, gt=0, description="First retry delay ceiling.")
    retry_cap_seconds: float = Field(600.0, gt=0, description="Longest delay between retries.")
    max_attempts: int = Field(
        20, ge=1, description="Failed attempts after which a delivery is dead-lettered."
    )
    retention_days: int = Field(
        30, ge=1, description="Events older than this are purged once every consumer had them."
    )
    purge_interval_seconds: float = Field(
        3600.0, gt=0, description="How often `serve` runs the retention purge."
    )
    reconcile: bool = Field(
        True, description="Run reconciliation (polling Zoho for missed changes) in `serve`."
    )
    reconcile_auto_watches: bool = Field(
        True, description="Watch every module a managed channel names, automatically."
    )
    reconcile_grace_seconds: float = Field(
        600.0, ge=0, description="How long an unannounced change waits for its webhook."
    )
    reconcile_settle_seconds: float = Field(
        60.0, ge=0, description="How far behind Zoho's Date header the cursor stays."
    )
    reconcile_crm_overlap_seconds: float = Field(
        300.0, ge=0, description="How far below its cursor each CRM run reads again."
    )
    reconcile_books_overlap_seconds: float = Field(
        900.0, ge=0, description="How far below its cursor each Books run reads again."
    )
    reconcile_crm_minutes: float = Field(
        15.0, gt=0, description="Longest time between two runs of a CRM watch."
    )
    reconcile_books_minutes: float = Field(
        60.0, gt=0, description="Longest time between two runs of a Books watch."
    )
    reconcile_deletes_minutes: float = Field(
        60.0, gt=0, description="How often CRM deletions (/{module}/deleted) are listed."
    )
    reconcile_sweep_hours: float = Field(
        24.0, gt=0, description="How often an opted-in Books watch sweeps all ids for deletions."
    )
    reconcile_budget_share: float = Field(
        0.2, gt=0, le=1,
        description="Reconciliation's share of Books calls per minute and CRM concurrency.",
    )  # fmt: skip
    reconcile_daily_share: float = Field(
        0.1, gt=0, le=1,
        description="Reconciliation's share of Books calls per day and CRM credits per day.",
    )  # fmt: skip
    reconcile_coql: bool = Field(
        False, description="Large CRM catch-ups through COQL keyset pages (UNCERTAIN at Zoho)."
    )
    reconcile_tick_seconds: float = Field(
        15.0, gt=0, description="How often `serve` looks for due watches, signals and runs."
    )
    reconcile_lease_seconds: float = Field(
        600.0, gt=0, description="How long a replica holds a watch while running it."
    )
    heartbeat_seconds: float = Field(
        30.0, gt=0, description="How often each replica records that it is running."
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, le=1024 * 1024,
        description="Largest total size of a request's headers (names and values); 431 above.",
    )  # fmt: skip
    body_timeout_seconds: float = Field(
        15.0, gt=0, description="Time a client has to send a request body before a 408."
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0,
        description="Time `serve` gives a client to send a request's headers (then it closes).",
    )  # fmt: skip
    keep_alive_seconds: float = Field(
        5.0, gt=0, description="How long `serve` keeps an idle connection open between requests."
    )
    max_connections: int | None = Field(
        None, ge=16,
        description="Connections and requests `serve` handles at once before answering 503 "
        "(default: from the open-file limit).",
    )  # fmt: skip
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="Log lines for people (console) or machines (json)."
    )

    @field_validator("public_url", "url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an absolute http:// or https:// URL, not {value!r}")
        return value.rstrip("/")

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN:
            raise ValueError(
                f"must be at least {MIN_ADMIN_TOKEN} characters "
                "(`zoho-bridge keygen` prints a good one)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_form(cls, value: str) -> str:
        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what `from_environ` passes in: the process environment is never read here.
        return (init_settings,)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from `BRIDGE_*` keys of `environ`, then `overrides` on top.

        Raises ValueError (a pydantic ValidationError); `describe_errors` words it in
        terms of the environment variables."""
        values = _MappingEnvSource(cls, environ)()
        values["sink_config"] = SinkConfig.from_environ(environ)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def push_sinks(self) -> tuple[str, ...]:
        """The sinks fed through the outbox: all but `pull`, which reads the events table."""
        return tuple(name for name in self.sink_config.sinks if name != "pull")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def database_url_problem(url: str) -> str | None:
    """Why `url` cannot work as BRIDGE_DATABASE_URL, naming the expected form; or None."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return None
    dialect, _, driver = scheme.partition("+")
    if dialect in ("postgres", "postgresql", "sqlite"):
        if dialect == "postgres":
            cause = f"{scheme}:// is not a SQLAlchemy dialect name"
        elif not driver:
            cause = f"{scheme}:// without a driver picks a synchronous one"
        else:
            cause = f"{driver} is not the asyncio driver the bridge uses"
        form = "sqlite+aiosqlite:///path/to/file.db" if dialect == "sqlite" else (
            "postgresql+asyncpg://user:password@host:5432/database"
        )  # fmt: skip
        return f"must be {form} ({cause})"
    cause = f"{scheme}:// is not a database the bridge supports" if scheme else "no scheme"
    return f"must be {DATABASE_FORMS} ({cause})"


def known_variables() -> set[str]:
    """Every `BRIDGE_*` name some part of the bridge reads."""
    names = {n for n in Settings.model_fields if n != "sink_config"} | set(SinkConfig.model_fields)
    return {ENV_PREFIX + n.upper() for n in names} | set(OTHER_VARIABLES)


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """`BRIDGE_*` keys no part of the bridge reads, each with the closest known name."""
    known = known_variables()
    suffixes = sorted(name.removeprefix(ENV_PREFIX) for name in known)
    found = []
    for key in sorted(environ):
        name = key.upper()
        if not name.startswith(ENV_PREFIX) or name in known or name.startswith(OTHER_PREFIXES):
            continue
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1)
        found.append((key, ENV_PREFIX + close[0] if close else None))
    return found


_FIELD_WORDS = re.compile(
    r"\b(" + "|".join(n for n in SinkConfig.model_fields if "_" in n) + r")s?\b"
)


def describe_errors(exc: ValidationError) -> str:
    """A settings error in terms of the environment variables (never the value: it may be
    a secret), one `BRIDGE_X: what is wrong` per problem."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"] if not str(part).isdigit()]
        field = loc[-1] if loc and loc[-1] != "sink_config" else ""
        name = ENV_PREFIX + field.upper() if field else "BRIDGE_SINKS"
        message = str(error["msg"]).removeprefix("Value error, ")
        # Sink checks name their fields ("needs webhook_url"): name the variables instead.
        message = _FIELD_WORDS.sub(lambda m: ENV_PREFIX + m.group(0).upper(), message)
        parts.append(f"{name}: {message}")
    return "; ".join(parts)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment parsing, over a mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # case-insensitive, as pydantic-settings does for the real environment
        return {key.lower(): value for key, value in self._environ.items()}
