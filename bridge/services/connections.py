"""Zoho connections: add, list, change, remove, and check against Zoho.

A connection's secrets are encrypted at rest with BRIDGE_SECRET_KEY and only decrypted to
build the `bridge.zoho.Connection` the client needs; views never show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import ConfigurationError, InvalidInput, NotFound, SecretKeyError
from bridge.secretbox import SecretBox
from bridge.services.admin import NAME_PATTERN
from bridge.store import connections as store
from bridge.store.connections import ConnectionInfo
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection, Limits
from bridge.zoho.datacentres import data_centre
from bridge.zoho.errors import ZohoAuthError

STATUSES = ("active", "needs_reauth", "disabled")
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
    if not NAME_PATTERN.match(new.name):
        raise InvalidInput("name must be 1-64 characters: letters, digits, '_', '.', '-'")
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
            "status": "active",
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
        changes.update(refresh_token_encrypted=_encrypt(box, refresh_token), status="active")
        changes["last_error"] = None
    if client_secret:
        changes["client_secret_encrypted"] = _encrypt(box, client_secret)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        changes["status"] = status
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
        engine, name, now, status="needs_reauth", last_error=error.message
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
    if info.status != "active" or info.last_error:
        await store.update_connection(engine, name, now, status="active", last_error=None)
    org = result.crm_org or {}
    crm_org = str(org.get("company_name") or org.get("id") or "") or None
    books = [
        f"{o.get('name', '?')} ({o.get('organization_id', '?')})"
        for o in result.books_organizations
    ]
    return CheckReport(name=name, dc=info.dc, crm_org=crm_org, books_organizations=books)


def connection_view(info: ConnectionInfo) -> dict[str, Any]:
    """The admin/CLI shape of a connection: never a secret."""
    return {
        "name": info.name,
        "dc": info.dc,
        "client_id": info.client_id,
        "organization_id": info.organization_id,
        "accounts_url": info.accounts_url or data_centre(info.dc).accounts_url,
        "api_domain": info.api_domain or data_centre(info.dc).api_domain,
        "limits": info.limits,
        "status": info.status,
        "last_error": info.last_error,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }
