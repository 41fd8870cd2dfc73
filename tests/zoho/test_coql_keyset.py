"""COQL keyset catch-ups through ZohoClient: ties, an upper bound, edits mid-walk, and
credits costed by LIMIT (reconciliation.md C9, e #4)."""

from __future__ import annotations

from datetime import datetime

from bridge.sandbox.model import PageServed
from bridge.zoho.coql import CoqlKey
from bridge.zoho.meter import CallMeter
from bridge.zoho.pages import CoqlPage

from .conftest import Rig, connect


async def _walk(
    rig: Rig, since: datetime, until: datetime | None, meter: CallMeter, limit: int = 200
) -> list[str]:
    connection = connect(rig.sandbox, "acme")
    seen: list[str] = []
    page: CoqlPage = await rig.client.crm_coql_versions(
        connection, "Leads", since=since, until=until, limit=limit, meter=meter
    )
    while True:
        seen += [r["id"] for r in page.rows]
        if not page.more_records:
            return seen
        after = CoqlKey.of(page.rows[-1])
        assert after is not None
        page = await rig.client.crm_coql_versions(
            connection, "Leads", after=after, until=until, limit=limit, meter=meter
        )


async def test_keyset_walk_reads_every_version_once_across_ties(rig: Rig) -> None:
    state = rig.sandbox.state
    state.clock.freeze()
    state.add_org("acme")
    since = state.clock.dt()
    expected = []
    for _second in range(4):
        expected += [state.crm_create("Leads", {}) for _ in range(130)]
        state.clock.advance(1)
    until = state.clock.dt()
    state.clock.advance(5)
    state.crm_create("Leads", {})  # after the bound: not this catch-up's
    meter = CallMeter()
    assert await _walk(rig, since, until, meter) == expected
    assert (meter.calls, meter.crm_credits) == (3, 3)  # LIMIT 200 costs one credit each
    assert state.crm_credits("acme") == 3
    page = await rig.client.crm_coql_versions(connect(rig.sandbox, "acme"), "Leads", since=since)
    assert page.server_time == state.clock.dt()
    assert state.crm_credits("acme") == 3 + 3  # LIMIT 2000 costs three


async def test_an_edit_mid_walk_is_read_at_its_new_time_nothing_skipped(rig: Rig) -> None:
    state = rig.sandbox.state
    state.clock.freeze()
    state.add_org("acme")
    since = state.clock.dt()
    ids = []
    for _ in range(5):
        ids.append(state.crm_create("Leads", {}))
        state.clock.advance(1)

    def edit_first(page: PageServed) -> None:
        if page.page == 1 and page.kind == "coql":
            state.crm_update("Leads", ids[0], {"Phone": "1"})
            remove()

    remove = state.on_page(edit_first)
    seen = await _walk(rig, since, None, CallMeter(), limit=2)
    # Unlike OFFSET paging, moving a read row to the end skips nothing: it comes again.
    assert seen == [*ids, ids[0]]
