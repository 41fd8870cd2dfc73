"""Callback bodies the sandbox sends (zoho.md §2, §7) and the loop that posts them."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from bridge.sandbox.model import Channel, Delivery

# Subscription verbs differ from callback operations: create→insert, edit→update (§2).
_VERB = {"insert": "create", "update": "edit", "delete": "delete"}


def channel_wants(channel: Channel, module: str, operation: str) -> bool:
    """Whether `channel` watches `operation` (insert/update/delete) on `module`."""
    wanted = {f"{module}.{_VERB[operation]}", f"{module}.all"}
    return any(event in wanted for event in channel.events)


def crm_payload(
    channel: Channel,
    dc: str,
    module: str,
    operation: str,
    ids: list[str],
    values: dict[str, Any],
    server_time_ms: int,
) -> dict[str, Any]:
    """The JSON Zoho CRM POSTs to `notify_url`, field for field as in zoho.md §7.1."""
    affected: list[Any] = []
    if operation == "update":
        affected = [{record_id: sorted(values)} for record_id in ids]
    payload: dict[str, Any] = {
        "server_time": server_time_ms,
        "query_params": dict(parse_qsl(urlsplit(channel.notify_url).query)),
        "module": module,
        # Zoho's samples show v2 here whatever version subscribed (zoho.md §2).
        "resource_uri": f"https://www.zohoapis.{dc}/crm/v2/{module}",
        "ids": list(ids),
        "affected_fields": affected,
        "operation": operation,
        "channel_id": channel.channel_id,
        "token": channel.token,
    }
    if channel.return_affected_field_values:
        payload["affected_values"] = [{"record_id": i, "values": dict(values)} for i in ids]
    return payload


def books_payload(wrapper: str, record: dict[str, Any]) -> dict[str, Any]:
    """The Books Default Payload: the record under its entity name (zoho.md §3.2)."""
    return {wrapper: dict(record)}


class _Outbox(Protocol):
    outbox: asyncio.Queue[Delivery]
    delay: float

    def record_failed_action(self, delivery: Delivery, reason: str) -> None: ...


async def deliver_forever(state: _Outbox, http: httpx.AsyncClient) -> None:
    """POST queued callbacks one by one, after the configured delay, recording outcomes;
    a failed Books delivery is also logged as a failed workflow action (zoho.md §3.4)."""
    while True:
        delivery = await state.outbox.get()
        reason = ""
        try:
            if state.delay > 0:
                await asyncio.sleep(state.delay)
            response = await http.post(delivery.url, json=delivery.payload)
            delivery.status = response.status_code
            delivery.outcome = "delivered" if response.is_success else "failed"
            reason = f"HTTP {response.status_code}"
        except Exception as exc:
            # Any failure is one failed delivery; the loop must survive it, or `flush`
            # would wait forever on a queue nobody drains.
            delivery.outcome = "failed"
            reason = type(exc).__name__
        finally:
            if delivery.outcome == "failed":
                state.record_failed_action(delivery, reason)
            state.outbox.task_done()
