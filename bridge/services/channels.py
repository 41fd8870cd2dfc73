"""Operator actions on managed CRM channels: create, renew now, rotate, disable; the views
and the problem list that status, readiness, metrics and logs share."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from bridge.domain.channel_rules import at_risk, check_events, next_renewal
from bridge.domain.credentials import new_token, token_digest
from bridge.errors import InvalidInput, NotFound
from bridge.metrics import CHANNEL_RENEWALS, CHANNELS_AT_RISK
from bridge.services import connections
from bridge.services.admin import NAME_PATTERN
from bridge.services.channel_keeper import ChannelKeeper
from bridge.store import managed_channels as store
from bridge.store.connections import list_connections
from bridge.store.managed_channels import ManagedChannel
from bridge.zoho.errors import ZohoAuthError, ZohoError, ZohoPartialFailure

log = structlog.get_logger(__name__)

# Pipedream draws channel ids from [1, 2^48); Zoho documents no maximum (zoho.md §1.2).
CHANNEL_ID_LIMIT = 2**48


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    connection: str
    events: list[str]
    source: str | None = None
    notify_on_related_action: bool | None = None
    return_affected_field_values: bool | None = None


async def create_channel(
    keeper: ChannelKeeper, public_url: str | None, request: ChannelRequest
) -> ManagedChannel:
    """Enable a new channel at Zoho whose callbacks come to this bridge's /hooks/crm."""
    if not public_url:
        raise InvalidInput(
            "BRIDGE_PUBLIC_URL is not set: Zoho needs the public URL of this bridge to send "
            "callbacks to (e.g. https://hooks.example.com)"
        )
    events = [e.strip() for e in request.events if e.strip()]
    if not events:
        raise InvalidInput("give at least one event, e.g. Leads.all or Deals.edit")
    if bad := check_events(events):
        raise InvalidInput(f"events must look like Module.create|edit|delete|all: {bad}")
    source = request.source or request.connection
    if not NAME_PATTERN.match(source):
        raise InvalidInput("source must be 1-64 letters, digits, '_', '.', '-'")
    info = await connections.load(keeper.engine, request.connection)
    if info.status != "active":
        raise InvalidInput(f"connection {info.name} is {info.status}; fix it first")
    now = keeper.clock()
    channel_id = str(secrets.randbelow(CHANNEL_ID_LIMIT - 1) + 1)
    token = new_token(40)  # Zoho allows at most 50 characters (zoho.md §1.2)
    options = {
        k: v
        for k, v in (
            ("notify_on_related_action", request.notify_on_related_action),
            ("return_affected_field_values", request.return_affected_field_values),
        )
        if v is not None
    }
    # Stored (and leased) before Zoho hears of it: the first callback may come at once.
    await store.insert_managed(
        keeper.engine,
        {
            "channel_id": channel_id, "source": source, "events": events,
            "tokens": [{"sha256": token_digest(token), "valid_until": None}],
            "notify_url": f"{public_url}/hooks/crm", "expires_at": None, "status": "active",
            "created_at": now, "updated_at": now, "connection": info.name,
            "token_encrypted": keeper.box.encrypt(token), "options": options,
            "lease_owner": keeper.owner, "lease_until": now + keeper.lease,
        },
    )  # fmt: skip
    keeper.lookup.forget_channel(channel_id)
    channel = await store.get_managed(keeper.engine, channel_id)
    assert channel is not None
    try:
        expires_at = await keeper.send(connections.to_zoho(info, keeper.box), channel, token, now)
    except ZohoError as exc:
        await store.remove(keeper.engine, channel_id)
        if isinstance(exc, ZohoAuthError):
            await connections.mark_needs_reauth(keeper.engine, info.name, exc, now)
        CHANNEL_RENEWALS.labels("create", "failed").inc()
        raise
    await store.finish(
        keeper.engine, channel_id, keeper.owner, expires_at=expires_at, last_renewed_at=now,
        verified_at=now, next_renewal_at=next_renewal(now, expires_at, keeper.policy),
    )  # fmt: skip
    CHANNEL_RENEWALS.labels("create", "ok").inc()
    found = await store.get_managed(keeper.engine, channel_id)
    assert found is not None
    return found


async def managed(keeper: ChannelKeeper, channel_id: str) -> ManagedChannel:
    found = await store.get_managed(keeper.engine, channel_id)
    if found is None:
        raise NotFound(f"no managed channel {channel_id}")
    return found


async def renew_now(keeper: ChannelKeeper, channel_id: str, *, rotate: bool = False) -> str:
    """Renew (optionally with a new token) now, whatever the schedule says."""
    channel = await managed(keeper, channel_id)
    if channel.status == "disabled":
        raise InvalidInput(f"channel {channel_id} is disabled")
    outcome = await keeper.renew(channel_id, reason="renew", rotate=rotate)
    if outcome == "skipped":
        raise InvalidInput(f"channel {channel_id} is being renewed by another replica right now")
    after = await managed(keeper, channel_id)
    if outcome != "renewed":
        raise InvalidInput(f"channel {channel_id} was not renewed ({outcome}): {after.last_error}")
    return outcome


async def disable_channel(keeper: ChannelKeeper, channel_id: str) -> str:
    """Delete the channel at Zoho (`DELETE ?channel_ids=`) and here. A channel Zoho already
    forgot (expired, deleted) is disabled here all the same."""
    channel = await managed(keeper, channel_id)
    note = "deleted at Zoho"
    try:
        info = await connections.load(keeper.engine, channel.connection)
        await keeper.zoho.crm_watch_disable(connections.to_zoho(info, keeper.box), [channel_id])
    except ZohoPartialFailure as exc:
        if any(e.code != "NOT_SUBSCRIBED" for e in exc.errors):
            raise
        note = "Zoho no longer knew it"
    except ZohoAuthError as exc:
        await connections.mark_needs_reauth(keeper.engine, channel.connection, exc, keeper.clock())
        note = f"not deleted at Zoho ({exc.message}); it lapses at its expiry"
    except NotFound:
        note = "its connection is gone; it lapses at Zoho at its expiry"
    now = keeper.clock()
    await store.update_channel(
        keeper.engine, channel_id, status="disabled", next_renewal_at=None, lease_owner=None,
        lease_until=None, updated_at=now,
    )  # fmt: skip
    keeper.lookup.forget_channel(channel_id)
    return note


def state_of(channel: ManagedChannel, connection_status: str | None, now: datetime) -> str:
    if channel.status == "disabled":
        return "disabled"
    if connection_status != "active":
        return "paused"
    if channel.expires_at is not None and channel.expires_at <= now:
        return "expired"
    return "failing" if channel.failures else "live"


def managed_view(
    channel: ManagedChannel, connection_status: str | None, now: datetime
) -> dict[str, Any]:
    left = (channel.expires_at - now).total_seconds() if channel.expires_at else None
    return {
        "channel_id": channel.channel_id,
        "connection": channel.connection,
        "source": channel.source,
        "events": list(channel.events),
        "notify_url": channel.notify_url,
        "options": channel.options,
        "state": state_of(channel, connection_status, now),
        "expires_at": _iso(channel.expires_at),
        "expires_in_seconds": int(left) if left is not None else None,
        "last_renewed_at": _iso(channel.last_renewed_at),
        "next_renewal_at": _iso(channel.next_renewal_at),
        "renewals": channel.renewals,
        "failures": channel.failures,
        "last_error": channel.last_error,
        "tokens": [{"valid_until": _iso(t.valid_until)} for t in channel.tokens],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


async def list_views(keeper: ChannelKeeper, *, live_only: bool = False) -> list[dict[str, Any]]:
    statuses = {c.name: c.status for c in await list_connections(keeper.engine)}
    now = keeper.clock()
    return [
        managed_view(c, statuses.get(c.connection), now)
        for c in await store.list_managed(keeper.engine, live_only=live_only)
    ]


async def channel_problems(keeper: ChannelKeeper, *, warn: bool = False) -> dict[str, Any]:
    """The channel part of `/admin/status`: managed channels that are paused or expire
    within BRIDGE_CHANNEL_ALERT_HOURS. Also sets the gauge; with `warn` (the scheduled
    cycle) logs a warning for each, so the alert repeats every cycle until fixed."""
    now = keeper.clock()
    statuses = {c.name: c.status for c in await list_connections(keeper.engine)}
    channels = await store.list_managed(keeper.engine, live_only=True)
    problems = []
    for channel in channels:
        view = managed_view(channel, statuses.get(channel.connection), now)
        if view["state"] == "paused" or at_risk(channel.expires_at, now, keeper.policy):
            problems.append(view)
            if warn:
                log.warning("channel at risk", channel=view["channel_id"],
                            state=view["state"], expires_at=view["expires_at"],
                            last_error=view["last_error"])  # fmt: skip
    CHANNELS_AT_RISK.set(len(problems))
    return {"managed": len(channels), "at_risk": problems}
