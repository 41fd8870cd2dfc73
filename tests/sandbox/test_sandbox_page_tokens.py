"""CRM page tokens expire (24 h, or on demand) and are bound to their query; Zoho's
answers as an OAS-derived Get Records reference gives them (UNCERTAIN)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from .conftest import Api

PARAMS = {"fields": "id", "sort_by": "Modified_Time", "sort_order": "desc", "per_page": "1"}


async def _token(api: Api) -> str:
    for _ in range(3):
        api.state.crm_create("Leads", {})
    first = (await api.crm("Leads", **PARAMS)).json()
    expiry = datetime.fromisoformat(first["info"]["page_token_expiry"])
    assert expiry == api.state.clock.dt() + timedelta(days=1)
    token: str = first["info"]["next_page_token"]
    return token


async def test_token_expires_after_its_ttl(api: Api) -> None:
    await _token(api)  # valid a day by default; a shorter TTL keeps the access token alive
    api.state.page_token_ttl = 120
    first = (await api.crm("Leads", **PARAMS)).json()
    token = first["info"]["next_page_token"]
    api.state.clock.advance(119)
    assert (await api.crm("Leads", **PARAMS, page_token=token)).status_code == 200
    api.state.clock.advance(1)
    expired = await api.crm("Leads", **PARAMS, page_token=token)
    assert expired.status_code == 400
    assert expired.json() == {
        "code": "EXPIRED_VALUE",
        "details": {"api_name": "page_token", "json_path": "$.query.page_token"},
        "message": "Page token expired",
        "status": "error",
    }


async def test_tokens_can_be_expired_on_demand(api: Api, http: httpx.AsyncClient) -> None:
    token = await _token(api)
    api.state.expire_page_tokens()
    assert (await api.crm("Leads", **PARAMS, page_token=token)).json()["code"] == "EXPIRED_VALUE"
    fresh = await _token(api)
    await http.post(f"{api.sandbox.url}/_sandbox/page-tokens/expire")
    assert (await api.crm("Leads", **PARAMS, page_token=fresh)).json()["code"] == "EXPIRED_VALUE"


async def test_token_is_bound_to_its_query(api: Api) -> None:
    token = await _token(api)
    altered = await api.crm("Leads", **{**PARAMS, "fields": "Last_Name"}, page_token=token)
    assert altered.status_code == 400
    assert altered.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    assert altered.json()["details"] == {"param_name": "page_token"}
    unknown = await api.crm("Leads", **PARAMS, page_token="nope")
    assert unknown.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    since = {"If-Modified-Since": "2020-01-01T00:00:00+00:00"}
    added = await api.crm("Leads", headers=since, **PARAMS, page_token=token)
    assert added.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
