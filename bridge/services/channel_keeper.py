"""Keeps managed CRM channels alive: renews them early, repairs what Zoho lost or changed,
records the gaps, and pauses channels whose connection needs a new consent.

Runs on any number of replicas: each piece of work is claimed with a database lease first
(`store.managed_channels.claim`), so Zoho sees each renewal once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.channel_rules import (
    RenewalPolicy,
    Wanted,
    channel_expiry,
    diagnose,
    gap_start,
    merge_listing,
    next_renewal,
    parse_expiry,
    retry_after_failure,
)
from bridge.domain.credentials import ChannelToken, new_token, token_digest
from bridge.domain.states import ConnectionStatus
from bridge.metrics import CHANNEL_GAPS, CHANNEL_RENEWALS
from bridge.secretbox import SecretBox
from bridge.services import connections
from bridge.services.lookup import Lookup
from bridge.store import managed_channels as store
from bridge.store.connections import list_connections
from bridge.store.managed_channels import Gap, ManagedChannel
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.errors import ZohoAuthError, ZohoError
from bridge.zoho.watch import WatchSpec

log = structlog.get_logger(__name__)


@dataclass
class ChannelKeeper:
    """Renewal, repair and rotation of managed channels, for one replica (`owner`)."""

    engine: AsyncEngine
    box: SecretBox
    zoho: ZohoClient
    lookup: Lookup
    clock: Callable[[], datetime]
    owner: str
    policy: RenewalPolicy = field(default_factory=RenewalPolicy)
    lease: timedelta = timedelta(minutes=5)
    grace: timedelta = timedelta(hours=1)
    rotate_every: int = 0
    rng: random.Random = field(default_factory=random.Random)
    # Told when a channel of a connection is live again after a gap (reconciliation then
    # polls the gap's span at once).
    on_recovered: Callable[[str], Awaitable[None]] | None = None

    async def send(
        self, connection: Connection, channel: ManagedChannel, token: str, now: datetime
    ) -> datetime:
        """Enable (POST) the channel with everything re-sent — events, token, notify URL,
        options, a fresh expiry — as PATCH semantics around `token` are disputed (zoho.md
        §1.2). Returns the expiry Zoho confirmed (or the one asked for)."""
        expiry = channel_expiry(now, self.policy)
        spec = WatchSpec(
            channel.channel_id,
            list(channel.events),
            channel.notify_url,
            token,
            expiry,
            channel.options.get("return_affected_field_values"),
            channel.options.get("notify_on_related_action"),
        )
        items = await self.zoho.crm_watch_enable(connection, [spec])
        return _confirmed_expiry(items) or expiry

    async def renew(
        self,
        channel_id: str,
        *,
        reason: str = "renew",
        rotate: bool = False,
        due: bool = False,
        confirmed_before: datetime | None = None,
    ) -> str:
        """Renew (or repair, when `reason` names a problem) one channel if this replica
        wins its lease. Returns "renewed", "skipped", "paused" or "failed"."""
        now = self.clock()
        won = await store.claim(
            self.engine, channel_id, self.owner, now, now + self.lease,
            due=due, confirmed_before=confirmed_before,
        )  # fmt: skip
        if not won:
            return "skipped"
        try:
            return await self._renew_claimed(channel_id, reason, rotate, now)
        except BaseException:
            await store.finish(self.engine, channel_id, self.owner)
            raise

    async def _renew_claimed(
        self, channel_id: str, reason: str, rotate: bool, now: datetime
    ) -> str:
        channel = await store.get_managed(self.engine, channel_id)
        assert channel is not None
        info = await connections.load(self.engine, channel.connection)
        if info.status is not ConnectionStatus.ACTIVE:
            # Calls with a refused refresh token only fail again; wait for the operator.
            await store.finish(
                self.engine, channel_id, self.owner,
                last_error=f"paused: connection {info.name} is {info.status}",
            )  # fmt: skip
            return "paused"
        token = self.box.decrypt(channel.token_encrypted)
        tokens = [t for t in channel.tokens if t.valid_at(now)]
        if rotate or (self.rotate_every and (channel.renewals + 1) % self.rotate_every == 0):
            token = new_token(40)
            tokens.append(ChannelToken(token_digest(token)))
            # Accepted from the moment it is sent: a callback with it may arrive before
            # Zoho's answer does.
            await store.update_channel(
                self.engine, channel_id, token_encrypted=self.box.encrypt(token), tokens=tokens
            )
            self.lookup.forget_channel(channel_id)
        label = "renew" if reason == "renew" else "repair"
        try:
            expires_at = await self.send(connections.to_zoho(info, self.box), channel, token, now)
        except ZohoAuthError as exc:
            await connections.mark_needs_reauth(self.engine, info.name, exc, now)
            await store.finish(self.engine, channel_id, self.owner, last_error=exc.message)
            CHANNEL_RENEWALS.labels(label, "needs_reauth").inc()
            log.warning("channel paused: connection needs reauth", channel=channel_id)
            return "paused"
        except ZohoError as exc:
            if channel.expires_at is not None and channel.expires_at <= now:
                # Lapsed and not repaired: not live since then, whatever repairs it later.
                await store.mark_down(self.engine, channel_id, self._down_from(channel))
            failures = channel.failures + 1
            retry = retry_after_failure(failures, now, channel.expires_at, self.policy, self.rng)
            await store.finish(
                self.engine, channel_id, self.owner, failures=failures, last_error=exc.message,
                next_renewal_at=retry,
            )  # fmt: skip
            CHANNEL_RENEWALS.labels(label, "failed").inc()
            log.warning("channel renewal failed", channel=channel_id, error=exc.message,
                        failures=failures, retry_at=retry.isoformat())  # fmt: skip
            return "failed"
        recovered = await self._gap_if_lapsed(channel, reason, now)
        current = token_digest(token)
        # Every other token only lasts the grace period: callbacks Zoho already sent
        # with it may still be on their way.
        kept = [
            t if t.sha256 == current or t.valid_until is not None
            else ChannelToken(t.sha256, now + self.grace)
            for t in tokens
        ]  # fmt: skip
        await store.finish(
            self.engine, channel_id, self.owner, expires_at=expires_at, last_renewed_at=now,
            verified_at=now, next_renewal_at=next_renewal(now, expires_at, self.policy),
            renewals=channel.renewals + 1, failures=0, last_error=None, tokens=kept,
            updated_at=now, down_since=None,
        )  # fmt: skip
        self.lookup.forget_channel(channel_id)
        if recovered and self.on_recovered is not None:
            await self.on_recovered(channel.connection)
        CHANNEL_RENEWALS.labels(label, "ok").inc()
        log.info("channel renewed", channel=channel_id, reason=reason,
                 expires_at=expires_at.isoformat())  # fmt: skip
        return "renewed"

    @staticmethod
    def _down_from(channel: ManagedChannel) -> datetime:
        """Since when callbacks may be missing: when a problem was first seen, else the
        last moment Zoho confirmed the channel (or its expiry, if that came first)."""
        return channel.down_since or gap_start(
            channel.verified_at, channel.expires_at, channel.created_at
        )

    async def _gap_if_lapsed(self, channel: ManagedChannel, reason: str, now: datetime) -> bool:
        """Record the gap a successful renewal closes, if the channel was not live: it had
        lapsed, a comparison with Zoho found a problem, or an earlier attempt saw one (its
        "not live since" stays from then on, whatever finally repaired it)."""
        lapsed = channel.expires_at is not None and channel.expires_at <= now
        if reason == "renew" and not lapsed and channel.down_since is None:
            return False
        why = reason if reason != "renew" else ("expired" if lapsed else "not live")
        gap = Gap(
            channel.channel_id, channel.connection, channel.events, self._down_from(channel),
            now, why, now,
        )  # fmt: skip
        await store.record_gap(self.engine, gap)
        CHANNEL_GAPS.inc()
        log.warning("channel gap recorded", channel=channel.channel_id, reason=gap.reason,
                    gap_from=gap.gap_from.isoformat(), gap_to=gap.gap_to.isoformat())  # fmt: skip
        return True

    async def renew_due(self) -> dict[str, int]:
        """Renew every channel whose renewal is due, on active connections only."""
        now = self.clock()
        active = {
            c.name
            for c in await list_connections(self.engine)
            if c.status is ConnectionStatus.ACTIVE
        }
        outcomes: dict[str, int] = {}
        for channel in await store.list_managed(self.engine):
            if channel.connection not in active:
                continue
            if channel.next_renewal_at is not None and channel.next_renewal_at > now:
                continue
            outcome = await self.renew(channel.channel_id, due=True)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    async def compare_with_zoho(self) -> dict[str, int]:
        """Compare managed channels with Zoho's list (`GET …/actions/watch`) and re-enable
        each one Zoho lost, let expire, or holds with other events, URL or token."""
        outcomes: dict[str, int] = {}
        channels = await store.list_managed(self.engine)
        for info in await list_connections(self.engine):
            mine = [c for c in channels if c.connection == info.name]
            if not mine or info.status is not ConnectionStatus.ACTIVE:
                continue
            listed_at = self.clock()
            try:
                listed = await self.zoho.crm_watch_get(connections.to_zoho(info, self.box))
            except ZohoAuthError as exc:
                await connections.mark_needs_reauth(self.engine, info.name, exc, listed_at)
                continue
            except ZohoError as exc:
                log.warning("cannot list channels at Zoho", connection=info.name,
                            error=exc.message)  # fmt: skip
                continue
            theirs = merge_listing(listed)
            for channel in mine:
                outcome = await self._compare_one(channel, theirs, listed_at)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    async def _compare_one(
        self, channel: ManagedChannel, theirs: dict[str, Any], listed_at: datetime
    ) -> str:
        wanted = Wanted(
            channel.channel_id, channel.events, channel.notify_url,
            self.box.decrypt(channel.token_encrypted), channel.expires_at,
        )  # fmt: skip
        problem = diagnose(wanted, theirs.get(channel.channel_id), listed_at)
        if problem is None:
            await store.confirm(self.engine, channel.channel_id, listed_at)
            return "ok"
        log.warning("channel differs at Zoho", channel=channel.channel_id, problem=problem)
        # Not live since the last confirmation, from this first sighting on: a repair
        # that fails now and succeeds later still records the whole gap.
        await store.mark_down(self.engine, channel.channel_id, self._down_from(channel))
        return await self.renew(channel.channel_id, reason=problem, confirmed_before=listed_at)


def _confirmed_expiry(items: list[dict[str, Any]]) -> datetime | None:
    """The `channel_expiry` in Zoho's success item (`details.events[]`, zoho.md §1.3)."""
    for item in items:
        details = item.get("details")
        events = details.get("events") if isinstance(details, dict) else None
        for event in events if isinstance(events, list) else []:
            if isinstance(event, dict) and (found := parse_expiry(event.get("channel_expiry"))):
                return found
    return None
