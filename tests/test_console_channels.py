"""The console's channels, requests and setup pages against a served bridge and the sandbox
Zoho: managed and imported channels, a failing channel flagged while its expiry is days
away, renew and disable after a confirmation, rejected requests with their bodies,
connections needing a new consent with what to do, sources and subscription lag."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from bridge.sandbox import RunningSandbox
from tests.channel_rig import bridge_rig, frozen_sandbox
from tests.support import ADMIN, ADMIN_TOKEN, crm_body


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


@asynccontextmanager
async def _console(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        answer = await client.post("/admin/ui/login", data={"token": ADMIN_TOKEN, "next": ""})
        assert answer.status_code == 303
        yield client


async def test_channels_failing_renewed_and_disabled_from_the_console(database_url: str) -> None:
    sandbox: RunningSandbox
    async with frozen_sandbox() as sandbox, bridge_rig(database_url, sandbox) as rig:
        managed = await rig.create(["Leads.all"])
        imported = await rig.http.post("/admin/channels/import",
                                       json={"channel_id": "1000000099001", "token": "t" * 20})  # fmt: skip
        assert imported.status_code == 201
        async with _console(rig.url) as console:
            page = await console.get("/admin/ui/channels")
            assert page.status_code == 200
            assert f"<code>{managed}</code>" in page.text
            assert "renewed by whoever created it" in page.text  # the imported one
            assert 'class="warn"' not in page.text

            org = rig.state.orgs["acme"]
            org.refresh_tokens.clear()  # the consent is revoked at Zoho: the renewal fails
            confirm = await console.get(f"/admin/ui/channels/{managed}/action?action=renew")
            assert "Renew now channel" in confirm.text
            failed = await console.post(f"/admin/ui/channels/{managed}/action",
                                        data={"csrf": _csrf(confirm.text), "action": "renew"})  # fmt: skip
            assert failed.status_code in (400, 502), failed.text
            page = await console.get("/admin/ui/channels")
            row = re.search(rf'<tr class="(\w*)" data-channel="{managed}">', page.text)
            assert row is not None and row.group(1) == "bad"  # paused: needs a new consent
            # A new consent: the channel is live again, days from expiry, but its last
            # renewal failed, so it stays flagged until a renewal succeeds.
            org.refresh_tokens.add("1000.new-consent")
            fixed = await rig.http.patch("/admin/connections/acme",
                                         json={"refresh_token": "1000.new-consent"})  # fmt: skip
            assert fixed.status_code == 200, fixed.text
            page = await console.get("/admin/ui/channels")
            row = re.search(rf'<tr class="(\w*)" data-channel="{managed}">', page.text)
            assert row is not None and row.group(1) == "warn", page.text
            assert '<span class="tag">failing</span>' in page.text

            renewed = await console.post(f"/admin/ui/channels/{managed}/action",
                                         data={"csrf": _csrf(confirm.text), "action": "renew"})  # fmt: skip
            assert renewed.status_code == 303
            assert "renewed" in renewed.headers["location"]
            page = await console.get("/admin/ui/channels")
            row = re.search(rf'<tr class="(\w*)" data-channel="{managed}">', page.text)
            assert row is not None and row.group(1) == ""

            confirm = await console.get(f"/admin/ui/channels/{managed}/action?action=disable")
            gone = await console.post(f"/admin/ui/channels/{managed}/action",
                                      data={"csrf": _csrf(confirm.text), "action": "disable"})  # fmt: skip
            assert gone.status_code == 303
            assert "deleted+at+Zoho" in gone.headers["location"]
            assert rig.state.count("DELETE /crm/v8/actions/watch") == 1
            # Imported channels have no buttons, and the action refuses them.
            refused = await console.get("/admin/ui/channels/1000000099001/action?action=renew")
            assert refused.status_code == 404
            odd = await console.get(f"/admin/ui/channels/{managed}/action?action=explode")
            assert odd.status_code == 400


async def test_requests_and_setup_pages(database_url: str) -> None:
    async with frozen_sandbox() as sandbox, bridge_rig(database_url, sandbox) as rig:
        await rig.http.post("/admin/channels/import",
                            json={"channel_id": "1000000068001",
                                  "token": "TOKEN_FOR_VERIFICATION_OF_1000000068001"})  # fmt: skip
        await rig.http.post("/admin/sources", json={"name": "acme-books"})
        await rig.http.post("/admin/subscriptions", json={"name": "billing"})
        hooks = httpx.AsyncClient(base_url=rig.url)
        async with hooks:
            assert (await hooks.post("/hooks/crm", json=crm_body())).status_code == 200
            wrong = crm_body(token="wrong-token-wrong-token", ids=["4876876000000999"])
            assert (await hooks.post("/hooks/crm", json=wrong)).status_code == 401
        async with _console(rig.url) as console:
            page = await console.get("/admin/ui/requests?status=rejected")
            assert page.status_code == 200
            assert "401 rejected" in page.text
            assert "<code>{&#34;" in page.text  # the body's start
            assert "wrong-token-wrong-token" not in page.text  # the token is redacted
            link = re.search(r'href="(/admin/ui/requests/[0-9A-Z]+)"', page.text)
            assert link is not None
            detail = await console.get(link.group(1))
            assert detail.status_code == 200
            assert 'id="body"' in detail.text and "4876876000000999" in detail.text
            accepted = await console.get("/admin/ui/requests?status=accepted")
            assert "200 accepted" in accepted.text
            assert (await console.get("/admin/ui/requests?status=lost")).status_code == 400

            setup = await console.get("/admin/ui/setup")
            assert "acme-books" in setup.text and "/hooks/books/acme-books" in setup.text
            billing = re.search(r"<td>billing</td><td>every event</td><td>0</td><td>(\d+)</td>",
                                setup.text)  # fmt: skip
            assert billing is not None and int(billing.group(1)) == 1  # one event not acked
            assert "needs_reauth" not in setup.text
            org = rig.state.orgs["acme"]
            org.refresh_tokens.clear()  # the consent is revoked at Zoho
            checked = await rig.http.post("/admin/connections/acme/check")
            assert checked.status_code in (200, 502), checked.text
            setup = await console.get("/admin/ui/setup")
            assert "needs_reauth" in setup.text
            assert "zoho-bridge connections update acme --refresh-token" in setup.text


async def test_an_admin_bearer_token_alone_opens_no_console_page(database_url: str) -> None:
    async with frozen_sandbox() as sandbox, bridge_rig(database_url, sandbox) as rig:
        for path in ("/admin/ui/deliveries", "/admin/ui/requests", "/admin/ui/channels",
                     "/admin/ui/setup"):  # fmt: skip
            answer = await rig.http.get(path, headers=ADMIN)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/admin/ui/login")
