"""The console's deliveries page against a real relay and a real subscriber: per-sink
state with the reason a sink was disabled, the dead-letter list, retry of selected rows and
of a whole sink after a confirmation (with the session's CSRF token)."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.delivery.conftest import BridgeFactory, Recorder, webhook_config
from tests.support import ADMIN_TOKEN


async def _sign_in(client: httpx.AsyncClient) -> None:
    answer = await client.post("/admin/ui/login", data={"token": ADMIN_TOKEN, "next": ""})
    assert answer.status_code == 303


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def _until_dead(b: object, count: int) -> list[dict[str, object]]:
    for _ in range(200):
        dead = await b.outbox(status="dead")  # type: ignore[attr-defined]
        if len(dead) >= count:
            return dead  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} dead deliveries")


async def test_dead_letters_are_listed_and_retried_from_the_console(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail = {"4876876000000400": 400}
    async with bridge(webhook_config(recorder.url)) as b:
        await _sign_in(b.client)
        await b.post_crm("4876876000000001", "4876876000000400")
        [dead] = await _until_dead(b, 1)
        page = await b.client.get("/admin/ui/deliveries?status=dead")
        assert page.status_code == 200
        assert "Dead letters" in page.text
        assert f'name="id" value="{dead["id"]}"' in page.text
        assert "400" in page.text  # the subscriber's answer, as the last error
        summary = re.search(
            r"<tr class=\"\">\s*<td><a[^>]*>webhook</a></td>\s*<td>on</td>", page.text
        )
        assert summary is not None

        recorder.fail = {}
        confirm = await b.client.get(f"/admin/ui/deliveries/retry?id={dead['id']}")
        assert confirm.status_code == 200
        assert f"Outbox rows {dead['id']} go back to pending" in confirm.text
        forged = await b.client.post("/admin/ui/deliveries/retry",
                                     data={"csrf": "0" * 32, "id": str(dead["id"])})  # fmt: skip
        assert forged.status_code == 403
        assert len(await b.outbox(status="dead")) == 1
        done = await b.client.post("/admin/ui/deliveries/retry",
                                   data={"csrf": _csrf(confirm.text), "id": str(dead["id"])})  # fmt: skip
        assert done.status_code == 303
        assert "1+dead+deliveries+queued+again" in done.headers["location"]
        for _ in range(200):
            if "4876876000000400" in [e["zohorecordid"] for e in recorder.envelopes]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the retried delivery never arrived")
        empty = await b.client.get("/admin/ui/deliveries?status=dead")
        assert "No dead letters" in empty.text

        bad = await b.client.get("/admin/ui/deliveries/retry?id=-5")
        assert bad.status_code == 400
        nothing = await b.client.get("/admin/ui/deliveries/retry")
        assert nothing.status_code == 400


async def test_a_disabled_sink_shows_the_failure_that_disabled_it_and_is_switched_on(
    bridge: BridgeFactory, recorder: Recorder
) -> None:
    recorder.fail = {"4876876000000410": 410}
    async with bridge(webhook_config(recorder.url)) as b:
        await _sign_in(b.client)
        await b.post_crm("4876876000000410")
        await _until_dead(b, 1)
        page = await b.client.get("/admin/ui/deliveries")
        assert "<strong>disabled</strong>" in page.text
        assert "410" in page.text
        assert "Switch on…" in page.text
        confirm = await b.client.get("/admin/ui/deliveries/retry?sink=webhook")
        assert "is switched back on" in confirm.text
        recorder.fail = {}
        done = await b.client.post("/admin/ui/deliveries/retry",
                                   data={"csrf": _csrf(confirm.text), "sink": "webhook"})  # fmt: skip
        assert done.status_code == 303
        assert "sink+webhook+is+on" in done.headers["location"]
        for _ in range(200):
            if recorder.envelopes:
                break
            await asyncio.sleep(0.05)
        assert [e["zohorecordid"] for e in recorder.envelopes] == ["4876876000000410"]
        after = await b.client.get("/admin/ui/deliveries")
        assert "<strong>disabled</strong>" not in after.text
