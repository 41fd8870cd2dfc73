"""CRM channels of every kind: import one created elsewhere, rotate its tokens, list all of
them (managed ones with their renewal state). Managed channels' own actions are in
`services.managed_channels`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.credentials import ChannelToken, token_digest
from bridge.errors import InvalidInput, NotFound
from bridge.services.lookup import Lookup
from bridge.services.managed_channels import ManagedChannelService
from bridge.services.sources import check_name, check_tokens
from bridge.services.views import channel_view
from bridge.store import channels as store
from bridge.store.channels import ChannelInfo

MAX_CRM_TOKEN_LENGTH = 50  # zoho.md §1.2: a longer token is INVALID_DATA at Zoho


@dataclass
class ChannelService:
    """Imported channels and the list of all channels. Changes are seen by this process
    at once (its lookup cache is told) and by other replicas within the cache time."""

    engine: AsyncEngine
    lookup: Lookup
    managed: ManagedChannelService
    clock: Callable[[], datetime]

    async def import_(
        self, channel_id: str, *, token: str, events: list[str], source: str = "crm"
    ) -> ChannelInfo:
        """Verify and store the callbacks of a channel created outside the bridge (which
        the bridge does not renew)."""
        if not channel_id.isdigit() or len(channel_id) > 64:
            raise InvalidInput("channel_id must be the decimal channel id Zoho knows")
        check_tokens([token], maximum=MAX_CRM_TOKEN_LENGTH)
        check_name(source)
        info = await store.import_channel(
            self.engine,
            channel_id=channel_id,
            token=ChannelToken(token_digest(token)),
            events=events,
            source=source,
            now=self.clock(),
        )
        self.lookup.forget_channel(channel_id)
        return info

    async def add_token(
        self, channel_id: str, token: str, *, retire_others_after: timedelta | None = None
    ) -> ChannelInfo:
        """Accept a new token; the current ones stay valid, or only for the given grace."""
        check_tokens([token], maximum=MAX_CRM_TOKEN_LENGTH)
        channel = await self.get(channel_id)
        now = self.clock()
        kept = [t for t in channel.tokens if t.valid_at(now)]
        if retire_others_after is not None:
            until = now + retire_others_after
            kept = [ChannelToken(t.sha256, min(until, t.valid_until or until)) for t in kept]
        new = ChannelToken(token_digest(token))
        info = await store.replace_tokens(
            self.engine, channel_id, [*[t for t in kept if t.sha256 != new.sha256], new], now
        )
        self.lookup.forget_channel(channel_id)
        return info

    async def get(self, channel_id: str) -> ChannelInfo:
        found = await store.get_channel(self.engine, channel_id)
        if found is None:
            raise NotFound(f"no channel {channel_id}")
        return found

    async def views(self) -> list[dict[str, Any]]:
        """Every channel; managed ones also show their renewal state (`renewal`)."""
        renewal = {v["channel_id"]: v for v in await self.managed.views()}
        return [
            {**channel_view(c), "renewal": renewal.get(c.channel_id)}
            for c in await store.list_channels(self.engine)
        ]

    async def view(self, channel_id: str) -> dict[str, Any]:
        found = await self.get(channel_id)
        renewal = None
        if found.managed:
            renewal = await self.managed.view(channel_id)
        return {**channel_view(found), "renewal": renewal}
