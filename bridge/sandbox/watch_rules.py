"""The CRM Notification API's rules as the sandbox enforces them (zoho.md §1). Pure."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bridge.sandbox.model import Channel

MAX_EXPIRY = timedelta(days=7)  # v4 and later: at most one week (§1.2)
DEFAULT_EXPIRY = timedelta(hours=1)  # missing (or, per the docs, beyond a week) → 1 hour
MAX_TOKEN = 50
_EVENT = re.compile(r"^[A-Za-z0-9_]+\.(create|edit|delete|all)$")
_FRACTION = re.compile(r"T\d{2}:\d{2}:\d{2}\.\d+")

SUBSCRIBED = "Successfully subscribed for actions-watch of the given module"
UPDATED = "Successfully updated the subscribe details"
REMOVED = "Successfully removed the subscribe details"
UNSUBSCRIBED = "Successfully un-subscribed from actions-watch"


class ItemRejected(Exception):
    """One watch item broke a rule; becomes one error item in the answer."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.item = {"code": code, "details": dict(details), "message": message, "status": "error"}


def _invalid(field: str, message: str = "invalid data") -> ItemRejected:
    return ItemRejected("INVALID_DATA", message, {"api_name": field})


def parse_expiry(raw: Any, now: datetime, beyond_week: str) -> datetime:
    """`channel_expiry` → when the channel dies."""
    if raw is None:
        return now + DEFAULT_EXPIRY
    if not isinstance(raw, str) or _FRACTION.search(raw):
        # Two third-party sources saw fractional seconds refused (UNCERTAIN, §1.2).
        raise _invalid("channel_expiry")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid("channel_expiry") from None
    if when.tzinfo is None or when <= now:
        raise _invalid("channel_expiry")
    if when - now > MAX_EXPIRY:
        if beyond_week == "reject":
            raise _invalid("channel_expiry")
        return now + DEFAULT_EXPIRY
    return when


def build_channel(
    item: Mapping[str, Any],
    existing: Channel | None,
    now: datetime,
    *,
    full: bool,
    beyond_week: str,
) -> Channel:
    """The channel after applying `item`: `full` for POST/PUT (mandatory fields, rest reset),
    otherwise PATCH semantics (given fields change, the rest stay)."""
    channel_id = item.get("channel_id")
    if channel_id is None or str(channel_id) == "":
        raise ItemRejected(
            "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "channel_id"}
        )
    if full:
        for name in ("events", "notify_url"):
            if not item.get(name):
                raise ItemRejected(
                    "MANDATORY_NOT_FOUND", "required field not found", {"api_name": name}
                )
    events = item.get("events")
    if events is not None and (
        not isinstance(events, list)
        or not all(isinstance(e, str) and _EVENT.match(e) for e in events)
    ):
        raise _invalid("events")
    token = item.get("token")
    if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN):
        # "The length of the token is greater than 50 characters" (§1.2)
        raise _invalid("token")
    if not full and "channel_expiry" not in item and existing is not None:
        expiry = existing.expiry
    else:
        expiry = parse_expiry(item.get("channel_expiry"), now, beyond_week)
    base = (
        existing
        if (existing is not None and not full)
        else Channel(str(channel_id), [], "", expiry)
    )
    return replace(
        base,
        events=list(events) if events is not None else base.events,
        notify_url=str(item.get("notify_url") or base.notify_url),
        expiry=expiry,
        token=token if token is not None else base.token,
        return_affected_field_values=bool(
            item.get("return_affected_field_values", base.return_affected_field_values)
        ),
        notify_on_related_action=bool(
            item.get("notify_on_related_action", base.notify_on_related_action)
        ),
        notification_condition=item.get("notification_condition", base.notification_condition),
    )


def resource_id(module: str) -> str:
    """A stable fake id for a module, as Zoho reports modules by id."""
    return str(554023000000000000 + zlib.crc32(module.encode()) % 1_000_000)


def modules(channel: Channel) -> list[str]:
    """The modules a channel watches, in order of first mention."""
    return list(dict.fromkeys(event.split(".", 1)[0] for event in channel.events))


def success_item(channel: Channel, dc: str, message: str) -> dict[str, Any]:
    """A success item listing one `details.events[]` entry per module (§1.3)."""
    events = [
        {
            "channel_expiry": channel.expiry.isoformat(),
            "resource_uri": f"https://www.zohoapis.{dc}/crm/v8/{module}",
            "resource_id": resource_id(module),
            "resource_name": module,
            "channel_id": channel.channel_id,
        }
        for module in modules(channel)
    ]
    return {
        "code": "SUCCESS",
        "details": {"events": events},
        "message": message,
        "status": "success",
    }


def unsubscribed_items(channel: Channel, dc: str) -> list[dict[str, Any]]:
    """DELETE answers one item per module of the channel (§1.3)."""
    return [
        {
            "code": "SUCCESS",
            "details": {
                "resource_uri": f"https://www.zohoapis.{dc}/crm/v8/{module}",
                "resource_id": resource_id(module),
                "channel_id": channel.channel_id,
            },
            "message": UNSUBSCRIBED,
            "status": "success",
        }
        for module in modules(channel)
    ]


def not_subscribed(channel_id: str) -> dict[str, Any]:
    """The error item for a channel Zoho does not know (§1.1: OAS `NOT_SUBSCRIBED`)."""
    return {
        "code": "NOT_SUBSCRIBED",
        "details": {"channel_id": channel_id},
        "message": "Not subscribed for actions-watch of the given module",
        "status": "error",
    }


def describe(channel: Channel, dc: str) -> dict[str, Any]:
    """One entry of the GET answer's `watch[]`."""
    first = (modules(channel) or [""])[0]
    return {
        "channel_id": channel.channel_id,
        "events": list(channel.events),
        "channel_expiry": channel.expiry.isoformat(),
        "notify_url": channel.notify_url,
        "token": channel.token,
        "resource_uri": f"https://www.zohoapis.{dc}/crm/v8/{first}",
        "resource_id": resource_id(first),
        "resource_name": first,
        "notify_on_related_action": channel.notify_on_related_action,
        "return_affected_field_values": channel.return_affected_field_values,
        "notification_condition": channel.notification_condition,
    }


def answer_status(items: list[dict[str, Any]], success: int) -> int:
    """All items succeeded → `success`; none → 400; some → 202 (OAS partial failure)."""
    ok = sum(1 for item in items if item.get("status") == "success")
    if ok == len(items):
        return success
    return 400 if ok == 0 else 202
