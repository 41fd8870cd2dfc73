"""Zoho connections: add, list, change, remove, and check against Zoho.

A connection's secrets are encrypted at rest with BRIDGE_SECRET_KEY and only decrypted to
build the `bridge.zoho.Connection` the client needs; views never show them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.states import ConnectionStatus
from bridge.errors import ConfigurationError, InvalidInput, NotFound, SecretKeyError
from bridge.secretbox import SecretBox
from bridge.services.sources import check_name
from bridge.store import connections as store
from bridge.store.connections import ConnectionInfo
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection, Limits
from bridge.zoho.datacentres import data_centre
from bridge.zoho.errors import ZohoAuthError

STATUSES = tuple(ConnectionStatus)
LIMIT_FIELDS = tuple(f.name for f in fields(Limits))


@dataclass(frozen=True, slots=True)
class NewConnection:
    """What an operator gives to add a connection."""

    name: str
    dc: str
    client_id: str
    client_secret: str
    refresh_token: str
    organization_id: str | None = None
    accounts_url: str | None = None
    api_domain: str | None = None
    limits: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What `check` found: who Zoho says the connection is."""

    name: str
    dc: str
    crm_org: str | None
    books_organizations: list[str]


def _limits(raw: dict[str, Any] | None) -> Limits:
    raw = raw or {}
    unknown = set(raw) - set(LIMIT_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown limits: {', '.join(sorted(unknown))}")
    for key, value in raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInput(f"limits.{key} must be a positive whole number")
    return Limits(**raw)


def _encrypt(box: SecretBox, secret: str) -> str:
    try:
        return box.encrypt(secret)
    except SecretKeyError as exc:
        raise InvalidInput(exc.message) from None


async def add_connection(
    engine: AsyncEngine, box: SecretBox, new: NewConnection, now: datetime
) -> ConnectionInfo:
    check_name(new.name)
    try:
        data_centre(new.dc)
    except ConfigurationError as exc:
        raise InvalidInput(exc.message) from None
    for label, value in (
        ("client_id", new.client_id),
        ("client_secret", new.client_secret),
        ("refresh_token", new.refresh_token),
    ):
        if not value or value != value.strip():
            raise InvalidInput(f"{label} is required (without surrounding whitespace)")
    return await store.create_connection(
        engine,
        {
            "name": new.name,
            "dc": new.dc.lower().lstrip("."),
            "client_id": new.client_id,
            "client_secret_encrypted": _encrypt(box, new.client_secret),
            "refresh_token_encrypted": _encrypt(box, new.refresh_token),
            "organization_id": new.organization_id,
            "accounts_url": new.accounts_url.rstrip("/") if new.accounts_url else None,
            "api_domain": new.api_domain.rstrip("/") if new.api_domain else None,
            "limits": asdict(_limits(new.limits)),
            "status": ConnectionStatus.ACTIVE,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
        },
    )


async def reauthorise(
    engine: AsyncEngine,
    box: SecretBox,
    name: str,
    now: datetime,
    *,
    refresh_token: str | None = None,
    client_secret: str | None = None,
    status: str | None = None,
) -> ConnectionInfo:
    """Replace secrets (after a new consent) and/or set the status; a new refresh token
    makes the connection active again, which resumes its channels."""
    changes: dict[str, Any] = {}
    if refresh_token:
        changes.update(
            refresh_token_encrypted=_encrypt(box, refresh_token), status=ConnectionStatus.ACTIVE
        )
        changes["last_error"] = None
    if client_secret:
        changes["client_secret_encrypted"] = _encrypt(box, client_secret)
    if status is not None:
        try:
            changes["status"] = ConnectionStatus(status)
        except ValueError:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}") from None
    if not changes:
        raise InvalidInput("nothing to change")
    return await store.update_connection(engine, name, now, **changes)


def to_zoho(info: ConnectionInfo, box: SecretBox) -> Connection:
    """The plain `Connection` the Zoho client works with (secrets decrypted)."""
    limits = {k: v for k, v in info.limits.items() if k in LIMIT_FIELDS}
    return Connection(
        name=info.name,
        dc=info.dc,
        client_id=info.client_id,
        client_secret=box.decrypt(info.client_secret_encrypted),
        refresh_token=box.decrypt(info.refresh_token_encrypted),
        organization_id=info.organization_id,
        accounts_url=info.accounts_url,
        api_domain=info.api_domain,
        limits=Limits(**limits),
    )


async def load(engine: AsyncEngine, name: str) -> ConnectionInfo:
    found = await store.get_connection(engine, name)
    if found is None:
        raise NotFound(f"no connection named {name!r}")
    return found


async def mark_needs_reauth(
    engine: AsyncEngine, name: str, error: ZohoAuthError, now: datetime
) -> None:
    """Zoho refused the refresh token: stop calling with it until an operator fixes it."""
    await store.update_connection(
        engine, name, now, status=ConnectionStatus.NEEDS_REAUTH, last_error=error.message
    )


async def check(
    engine: AsyncEngine, box: SecretBox, client: ZohoClient, name: str, now: datetime, *,
    crm: bool = True,
) -> CheckReport:  # fmt: skip
    """One cheap authenticated call (CRM `/org`, Books `/organizations`). A refused
    refresh token marks the connection `needs_reauth` and is raised; success marks it
    `active` again."""
    info = await load(engine, name)
    try:
        result = await client.check(to_zoho(info, box), crm=crm)
    except ZohoAuthError as exc:
        await mark_needs_reauth(engine, name, exc, now)
        raise
    if info.status is not ConnectionStatus.ACTIVE or info.last_error:
        await store.update_connection(
            engine, name, now, status=ConnectionStatus.ACTIVE, last_error=None
        )
    org = result.crm_org or {}
    crm_org = str(org.get("company_name") or org.get("id") or "") or None
    books = [
        f"{o.get('name', '?')} ({o.get('organization_id', '?')})"
        for o in result.books_organizations
    ]
    return CheckReport(name=name, dc=info.dc, crm_org=crm_org, books_organizations=books)


@dataclass
class ConnectionService:
    """Zoho connections as operators manage them (the functions above, bound to this
    bridge's database, key, Zoho client and clock)."""

    engine: AsyncEngine
    box: SecretBox
    zoho: ZohoClient
    clock: Callable[[], datetime]

    async def add(self, new: NewConnection) -> ConnectionInfo:
        return await add_connection(self.engine, self.box, new, self.clock())

    async def change(
        self,
        name: str,
        *,
        refresh_token: str | None = None,
        client_secret: str | None = None,
        status: str | None = None,
    ) -> ConnectionInfo:
        return await reauthorise(
            self.engine, self.box, name, self.clock(), refresh_token=refresh_token,
            client_secret=client_secret, status=status,
        )  # fmt: skip

    async def get(self, name: str) -> ConnectionInfo:
        return await load(self.engine, name)

    async def all(self) -> list[ConnectionInfo]:
        return await store.list_connections(self.engine)

    async def remove(self, name: str) -> None:
        """Remove a connection (refused while it has live channels)."""
        await store.delete_connection(self.engine, name)

    async def check(self, name: str, *, crm: bool = True) -> CheckReport:
        return await check(self.engine, self.box, self.zoho, name, self.clock(), crm=crm)
