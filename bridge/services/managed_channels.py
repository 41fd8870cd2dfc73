"""Managed CRM channels, as operators act on them: create, renew now, rotate, disable; the
views, gaps and the problem list that status, readiness, metrics and logs share.

Renewal itself (scheduled, leased, repairing) is the `ChannelKeeper`'s job.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import structlog

from bridge.domain.channel_rules import at_risk, check_events, next_renewal
from bridge.domain.credentials import new_token, token_digest
from bridge.domain.states import ChannelState, ChannelStatus, ConnectionStatus
from bridge.errors import InvalidInput, NotFound
from bridge.metrics import CHANNEL_RENEWALS, CHANNELS_AT_RISK
from bridge.services import connections
from bridge.services.channel_keeper import ChannelKeeper
from bridge.services.sources import check_name
from bridge.services.views import managed_view
from bridge.services.watches import WatchService
from bridge.store import managed_channels as store
from bridge.store.connections import list_connections
from bridge.store.managed_channels import Gap, ManagedChannel
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


@dataclass
class ManagedChannelService:
    """Operator actions on the channels the bridge creates and renews."""

    keeper: ChannelKeeper
    public_url: str | None
    watches: WatchService | None = None  # to watch the new channel's modules at once

    async def create(self, request: ChannelRequest) -> ManagedChannel:
        """Enable a new channel at Zoho whose callbacks come to this bridge's /hooks/crm."""
        keeper = self.keeper
        if not self.public_url:
            raise InvalidInput(
                "BRIDGE_PUBLIC_URL is not set: Zoho needs the public URL of this bridge to "
                "send callbacks to (e.g. https://hooks.example.com)"
            )
        events = [e.strip() for e in request.events if e.strip()]
        if not events:
            raise InvalidInput("give at least one event, e.g. Leads.all or Deals.edit")
        if bad := check_events(events):
            raise InvalidInput(f"events must look like Module.create|edit|delete|all: {bad}")
        source = request.source or request.connection
        check_name(source, "source")
        info = await connections.load(keeper.engine, request.connection)
        if info.status is not ConnectionStatus.ACTIVE:
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
                "notify_url": f"{self.public_url}/hooks/crm", "expires_at": None,
                "status": ChannelStatus.ACTIVE, "created_at": now, "updated_at": now,
                "connection": info.name, "token_encrypted": keeper.box.encrypt(token),
                "options": options, "lease_owner": keeper.owner,
                "lease_until": now + keeper.lease,
            },
        )  # fmt: skip
        keeper.lookup.forget_channel(channel_id)
        channel = await self.get(channel_id)
        try:
            expires_at = await keeper.send(
                connections.to_zoho(info, keeper.box), channel, token, now
            )
        except ZohoError as exc:
            await store.remove(keeper.engine, channel_id)
            if isinstance(exc, ZohoAuthError):
                await connections.mark_needs_reauth(keeper.engine, info.name, exc, now)
            CHANNEL_RENEWALS.labels("create", "failed").inc()
            raise
        await store.finish(
            keeper.engine, channel_id, keeper.owner, expires_at=expires_at,
            last_renewed_at=now, verified_at=now,
            next_renewal_at=next_renewal(now, expires_at, keeper.policy),
        )  # fmt: skip
        CHANNEL_RENEWALS.labels("create", "ok").inc()
        if self.watches is not None:
            await self.watches.ensure_automatic()
        return await self.get(channel_id)

    async def get(self, channel_id: str) -> ManagedChannel:
        found = await store.get_managed(self.keeper.engine, channel_id)
        if found is None:
            raise NotFound(f"no managed channel {channel_id}")
        return found

    async def renew_now(self, channel_id: str, *, rotate: bool = False) -> ManagedChannel:
        """Renew (optionally with a new token) now, whatever the schedule says."""
        channel = await self.get(channel_id)
        if channel.status is ChannelStatus.DISABLED:
            raise InvalidInput(f"channel {channel_id} is disabled")
        outcome = await self.keeper.renew(channel_id, reason="renew", rotate=rotate)
        if outcome == "skipped":
            raise InvalidInput(
                f"channel {channel_id} is being renewed by another replica right now"
            )
        after = await self.get(channel_id)
        if outcome != "renewed":
            raise InvalidInput(
                f"channel {channel_id} was not renewed ({outcome}): {after.last_error}"
            )
        return after

    async def disable(self, channel_id: str) -> str:
        """Delete the channel at Zoho (`DELETE ?channel_ids=`) and here; returns a note on
        what happened at Zoho. A channel Zoho already forgot is disabled here all the same."""
        keeper = self.keeper
        channel = await self.get(channel_id)
        note = "deleted at Zoho"
        try:
            info = await connections.load(keeper.engine, channel.connection)
            await keeper.zoho.crm_watch_disable(connections.to_zoho(info, keeper.box), [channel_id])
        except ZohoPartialFailure as exc:
            if any(e.code != "NOT_SUBSCRIBED" for e in exc.errors):
                raise
            note = "Zoho no longer knew it"
        except ZohoAuthError as exc:
            await connections.mark_needs_reauth(
                keeper.engine, channel.connection, exc, keeper.clock()
            )
            note = f"not deleted at Zoho ({exc.message}); it lapses at its expiry"
        except NotFound:
            note = "its connection is gone; it lapses at Zoho at its expiry"
        await store.update_channel(
            keeper.engine, channel_id, status=ChannelStatus.DISABLED, next_renewal_at=None,
            lease_owner=None, lease_until=None, updated_at=keeper.clock(),
        )  # fmt: skip
        keeper.lookup.forget_channel(channel_id)
        return note

    async def views(self, *, live_only: bool = False) -> list[dict[str, Any]]:
        """Every managed channel with its renewal state."""
        statuses = {c.name: c.status for c in await list_connections(self.keeper.engine)}
        now = self.keeper.clock()
        return [
            managed_view(c, statuses.get(c.connection), now)
            for c in await store.list_managed(self.keeper.engine, live_only=live_only)
        ]

    async def view(self, channel_id: str) -> dict[str, Any]:
        for found in await self.views():
            if found["channel_id"] == channel_id:
                return found
        raise NotFound(f"no managed channel {channel_id}")

    async def gaps(self, channel_id: str | None = None) -> list[Gap]:
        """Spans in which managed channels were not live at Zoho (reconciliation covers
        them); all channels' when `channel_id` is None."""
        return await store.list_gaps(self.keeper.engine, channel_id)

    async def problems(self, *, warn: bool = False) -> dict[str, Any]:
        """The channel part of `/admin/status`: managed channels that are paused or expire
        within BRIDGE_CHANNEL_ALERT_HOURS. Also sets the gauge; with `warn` (the scheduled
        cycle) logs a warning for each, so the alert repeats every cycle until fixed."""
        keeper = self.keeper
        now = keeper.clock()
        statuses = {c.name: c.status for c in await list_connections(keeper.engine)}
        channels = await store.list_managed(keeper.engine, live_only=True)
        problems = []
        for channel in channels:
            view = managed_view(channel, statuses.get(channel.connection), now)
            if view["state"] == ChannelState.PAUSED or at_risk(
                channel.expires_at, now, keeper.policy
            ):
                problems.append(view)
                if warn:
                    log.warning("channel at risk", channel=view["channel_id"],
                                state=view["state"], expires_at=view["expires_at"],
                                last_error=view["last_error"])  # fmt: skip
        CHANNELS_AT_RISK.set(len(problems))
        return {"managed": len(channels), "at_risk": problems}
