"""The records services hand to the web layer and the CLI: stored objects as read, plain
frozen dataclasses (`XInfo` is the stored X; its table is `store.models.XRow`)."""

from __future__ import annotations

from bridge.store.channels import ChannelInfo
from bridge.store.connections import ConnectionInfo
from bridge.store.managed_channels import Gap, ManagedChannel
from bridge.store.outbox_queries import DeliveryInfo
from bridge.store.sources import SourceInfo
from bridge.store.subscriptions import SubscriptionInfo

__all__ = [
    "ChannelInfo",
    "ConnectionInfo",
    "DeliveryInfo",
    "Gap",
    "ManagedChannel",
    "SourceInfo",
    "SubscriptionInfo",
]
