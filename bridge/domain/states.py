"""The states stored objects can be in: one StrEnum each, compared by member, never by a
bare string (the stored text is the member's value)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # Zoho refused the refresh token: a new consent is needed
    DISABLED = "disabled"


class ChannelStatus(StrEnum):
    """A channel's stored status: accepted callbacks (and, if managed, renewed) or not."""

    ACTIVE = "active"
    DISABLED = "disabled"


class ChannelState(StrEnum):
    """What a managed channel's state is right now, as operators see it."""

    LIVE = "live"
    FAILING = "failing"  # renewals fail; Zoho may still send until the expiry
    EXPIRED = "expired"
    PAUSED = "paused"  # its connection needs a new consent
    DISABLED = "disabled"


class SignatureMode(StrEnum):
    """What a Books source does with `X-Zoho-Webhook-Signature`."""

    ENFORCE = "enforce"  # refuse a missing or wrong signature
    REPORT = "report"  # record the outcome, enforce only the token


# What one renewal attempt of a managed channel came to.
RenewalOutcome = Literal["renewed", "skipped", "paused", "failed"]


class WatchStatus(StrEnum):
    """A reconciliation watch's stored status."""

    ACTIVE = "active"
    PAUSED = "paused"  # by an operator
    REMOVED = "removed"  # an automatic watch an operator removed: not created again


class RunState(StrEnum):
    """An on-demand reconciliation run or backfill."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
