"""The sandbox's accounts server and API auth speak Zoho's shapes (zoho.md §5, §6)."""

from __future__ import annotations

import httpx

from bridge.sandbox import RunningSandbox

from .conftest import access_token


def _form(sandbox: RunningSandbox, org: str, refresh: str | None = None) -> dict[str, str]:
    found = sandbox.state.orgs[org]
    return {
        "grant_type": "refresh_token",
        "client_id": found.client_id,
        "client_secret": found.client_secret,
        "refresh_token": refresh or next(iter(found.refresh_tokens)),
    }


async def test_refresh_grant_answers_like_zoho(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.state.add_org("acme", "eu")
    response = await http.post(
        f"{sandbox.accounts_url('eu')}/oauth/v2/token", data=_form(sandbox, "acme")
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "expires_in", "api_domain", "token_type"}
    assert body["expires_in"] == 3600
    assert body["api_domain"] == sandbox.api_domain("eu")
    assert body["token_type"] == "Bearer"


async def test_eleventh_token_in_ten_minutes_is_refused(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.state.add_org("acme")
    url = f"{sandbox.accounts_url()}/oauth/v2/token"
    statuses = [(await http.post(url, data=_form(sandbox, "acme"))).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [400]
    refused = await http.post(url, data=_form(sandbox, "acme"))
    assert refused.json() == {
        "error_description": "You have made too many requests continuously. "
        "Please try again after some time.",
        "error": "Access Denied",
        "status": "failure",
    }
    sandbox.state.clock.advance(601)
    assert (await http.post(url, data=_form(sandbox, "acme"))).status_code == 200


async def test_revoked_refresh_token_gets_invalid_code_with_200(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.state.add_org("acme", refresh_token="1000.rt")
    revoke = await http.post(
        f"{sandbox.accounts_url()}/oauth/v2/token/revoke", params={"token": "1000.rt"}
    )
    assert revoke.status_code == 200
    response = await http.post(
        f"{sandbox.accounts_url()}/oauth/v2/token", data=_form(sandbox, "acme", "1000.rt")
    )
    assert (response.status_code, response.json()) == (200, {"error": "invalid_code"})


async def test_api_rejects_bad_and_expired_tokens_in_each_products_shape(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.add_org("acme")
    token = await access_token(http, sandbox, "acme")
    crm = f"{sandbox.api_domain()}/crm/v8/org"
    books = f"{sandbox.api_domain()}/books/v3/invoices"
    good = {"Authorization": f"Zoho-oauthtoken {token}"}
    assert (await http.get(crm, headers=good)).status_code == 200
    assert (await http.get(crm, headers={"Authorization": f"Bearer {token}"})).json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }
    sandbox.state.clock.advance(3600)
    expired = await http.get(books, headers=good, params={"organization_id": org.organization_id})
    assert (expired.status_code, expired.json()) == (
        401,
        {"code": 57, "message": "You are not authorized to perform this operation"},
    )


async def test_token_from_one_data_centre_is_refused_by_another(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.state.add_org("acme", "eu")
    token = await access_token(http, sandbox, "acme")
    headers = {"Authorization": f"Zoho-oauthtoken {token}"}
    assert (
        await http.get(f"{sandbox.api_domain('eu')}/crm/v8/org", headers=headers)
    ).status_code == 200
    assert (
        await http.get(f"{sandbox.api_domain('com')}/crm/v8/org", headers=headers)
    ).status_code == 401
