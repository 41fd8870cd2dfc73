"""CRM Notification API request bodies and answers (zoho.md §1): pure shapes, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.zoho.errors import ItemError, ZohoApiError, ZohoPartialFailure

# "The length of the token is greater than 50 characters" → INVALID_DATA (zoho.md §1.2).
MAX_TOKEN_LENGTH = 50


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """One channel in a `{"watch": [...]}` request; None fields are left out (PATCH)."""

    channel_id: str
    events: Sequence[str] | None = None
    notify_url: str | None = None
    token: str | None = None
    channel_expiry: datetime | None = None
    return_affected_field_values: bool | None = None
    notify_on_related_action: bool | None = None


def format_expiry(when: datetime) -> str:
    """ISO-8601 without fractional seconds, as Zoho's SDK sends it; fractional seconds
    have been seen rejected with INVALID_DATA (zoho.md §1.2)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.replace(microsecond=0).isoformat()


def watch_item(spec: WatchSpec) -> dict[str, Any]:
    """The JSON object for one channel."""
    if spec.token is not None and len(spec.token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"channel token is longer than {MAX_TOKEN_LENGTH} characters")
    item: dict[str, Any] = {"channel_id": str(spec.channel_id)}
    if spec.events is not None:
        item["events"] = list(spec.events)
    if spec.notify_url is not None:
        item["notify_url"] = spec.notify_url
    if spec.token is not None:
        item["token"] = spec.token
    if spec.channel_expiry is not None:
        item["channel_expiry"] = format_expiry(spec.channel_expiry)
    if spec.return_affected_field_values is not None:
        item["return_affected_field_values"] = spec.return_affected_field_values
    if spec.notify_on_related_action is not None:
        item["notify_on_related_action"] = spec.notify_on_related_action
    return item


def watch_results(status: int, body: Any) -> list[dict[str, Any]]:
    """The items of a watch answer, or `ZohoPartialFailure` naming every failed item.

    Zoho answers 202 (or 400) with per-item errors inside `watch[]`, so every item's
    `status` is checked, not only the HTTP status (zoho.md §1.1).
    """
    items = body.get("watch") if isinstance(body, dict) else None
    if not isinstance(items, list):
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        raise ZohoApiError(
            f"unexpected watch answer (HTTP {status}): {code} {message}".strip(),
            status=status,
            code=code,
            body=body,
        )
    errors: list[ItemError] = []
    succeeded: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("status") == "success":
            succeeded.append(item)
            continue
        entry = item if isinstance(item, dict) else {}
        details = entry.get("details")
        errors.append(
            ItemError(
                index=index,
                code=str(entry.get("code", "UNKNOWN")),
                message=str(entry.get("message", "")),
                details=details if isinstance(details, dict) else {},
            )
        )
    if errors:
        raise ZohoPartialFailure(errors, status=status, body=body, succeeded=succeeded)
    return succeeded
