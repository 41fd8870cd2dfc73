"""The sandbox POSTs Zoho's callback bodies to live channels and Books webhooks (§2, §7)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bridge.sandbox import RunningSandbox, SandboxState
from bridge.sandbox.model import Channel

from .conftest import Receiver


def _watch(sandbox: RunningSandbox, url: str, events: list[str], **extra: object) -> Channel:
    org = sandbox.state.org()
    channel = Channel(
        "1000000068001",
        events,
        url,
        sandbox.state.clock.dt() + timedelta(hours=1),
        token="TOKEN_FOR_VERIFICATION_OF_1000000068001",
        **extra,  # type: ignore[arg-type]
    )
    org.channels[channel.channel_id] = channel
    return channel


async def test_insert_update_delete_callbacks_have_zohos_fields(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    sandbox.state.add_org("acme")
    _watch(
        sandbox, f"{receiver.url}/hooks/crm?k=abc", ["Leads.all"], return_affected_field_values=True
    )
    record = sandbox.state.crm_create("Leads", {"Last_Name": "Bowman"})
    sandbox.state.crm_update("Leads", record, {"Mobile": "123456789"})
    sandbox.state.crm_delete("Leads", record)
    await sandbox.state.flush()

    insert, update, delete = receiver.received
    assert set(insert) == {
        "server_time", "query_params", "module", "resource_uri", "ids", "affected_fields",
        "operation", "channel_id", "token", "affected_values",
    }  # fmt: skip
    assert insert["operation"] == "insert"
    assert insert["affected_fields"] == []
    assert insert["ids"] == [record]
    assert insert["channel_id"] == "1000000068001"
    assert insert["query_params"] == {"k": "abc"}
    assert insert["resource_uri"] == "https://www.zohoapis.com/crm/v2/Leads"
    assert insert["token"] == "TOKEN_FOR_VERIFICATION_OF_1000000068001"
    assert isinstance(insert["server_time"], int)
    assert update["operation"] == "update"
    assert update["affected_fields"] == [{record: ["Mobile"]}]
    assert update["affected_values"] == [{"record_id": record, "values": {"Mobile": "123456789"}}]
    assert delete["operation"] == "delete"
    assert receiver.paths == ["/hooks/crm"] * 3


async def test_only_watched_events_are_sent(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.state.add_org("acme")
    _watch(sandbox, receiver.url, ["Leads.edit"])
    record = sandbox.state.crm_create("Leads", {})
    sandbox.state.crm_create("Deals", {})
    sandbox.state.crm_update("Leads", record, {"Phone": "1"})
    await sandbox.state.flush()
    assert [r["operation"] for r in receiver.received] == ["update"]
    assert "affected_values" not in receiver.received[0]


async def test_expired_channel_gets_no_callbacks(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    sandbox.state.add_org("acme")
    _watch(sandbox, receiver.url, ["Leads.all"])
    sandbox.state.crm_create("Leads", {})
    sandbox.state.clock.advance(3600)
    sandbox.state.crm_create("Leads", {})
    await sandbox.state.flush()
    assert len(receiver.received) == 1
    assert len(sandbox.state.deliveries) == 1


async def test_drops_a_seeded_share_of_callbacks(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    state = sandbox.state
    state.add_org("acme")
    state.drop_rate = 0.3
    _watch(sandbox, receiver.url, ["Leads.create"])
    ids = [state.crm_create("Leads", {}) for _ in range(40)]
    await state.flush()
    dropped = {d.payload["ids"][0] for d in state.delivered("dropped")}
    delivered = {r["ids"][0] for r in receiver.received}
    assert 0 < len(dropped) < 40
    assert dropped | delivered == set(ids)
    assert not dropped & delivered
    assert len(state.delivered("delivered")) == len(delivered)

    # The same seed drops the same deliveries.
    twin = SandboxState(seed=0, drop_rate=0.3)
    twin.add_org("acme")
    twin.org().channels["c"] = Channel(
        "c", ["Leads.create"], "http://unused", twin.clock.dt() + timedelta(hours=1)
    )
    for _ in range(40):
        twin.crm_create("Leads", {})
    pattern = [d.outcome == "dropped" for d in state.deliveries]
    assert [d.outcome == "dropped" for d in twin.deliveries] == pattern


async def test_books_change_posts_the_default_payload(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    sandbox.state.add_org("acme")
    sandbox.state.books_webhook("invoices", f"{receiver.url}/hooks/books/acme")
    invoice = sandbox.state.books_create(
        "invoices", {"invoice_number": "INV-000002", "total": 1200.0}
    )
    sandbox.state.books_update("invoices", invoice, {"status": "sent"})
    sandbox.state.books_create("contacts", {"contact_name": "Bowman"})  # not hooked
    await sandbox.state.flush()
    first, second = receiver.received
    assert list(first) == ["invoice"]
    assert first["invoice"]["invoice_id"] == invoice
    assert first["invoice"]["invoice_number"] == "INV-000002"
    assert second["invoice"]["status"] == "sent"
    assert second["invoice"]["last_modified_time"].endswith("+0000")


async def test_delay_holds_callbacks_back(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.state.add_org("acme")
    sandbox.state.delay = 0.2
    _watch(sandbox, receiver.url, ["Leads.all"])
    sandbox.state.crm_create("Leads", {})
    await asyncio.sleep(0.05)
    assert receiver.received == []
    assert sandbox.state.deliveries[0].outcome == "pending"
    await sandbox.state.flush()
    assert len(receiver.received) == 1
    assert sandbox.state.deliveries[0].outcome == "delivered"


async def test_unreachable_receiver_is_a_failed_delivery(sandbox: RunningSandbox) -> None:
    sandbox.state.add_org("acme")
    _watch(sandbox, "http://127.0.0.1:9/hooks/crm", ["Leads.all"])
    sandbox.state.crm_create("Leads", {})
    await sandbox.state.flush()
    assert [d.outcome for d in sandbox.state.deliveries] == ["failed"]
