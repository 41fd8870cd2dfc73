"""The sandbox's CRM and Books list endpoints enforce Zoho's paging and limit rules."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bridge.sandbox import RunningSandbox

from .conftest import access_token


@pytest.fixture
async def api(sandbox: RunningSandbox, http: httpx.AsyncClient) -> httpx.AsyncClient:
    sandbox.state.add_org("acme", organization_id="777")
    token = await access_token(http, sandbox, "acme")
    http.headers["Authorization"] = f"Zoho-oauthtoken {token}"
    return http


async def test_crm_list_rules(sandbox: RunningSandbox, api: httpx.AsyncClient) -> None:
    url = f"{sandbox.api_domain()}/crm/v8/Leads"
    missing = await api.get(url)
    assert missing.status_code == 400
    assert missing.json()["code"] == "REQUIRED_PARAM_MISSING"
    too_many = await api.get(url, params={"fields": ",".join(f"F{i}" for i in range(51))})
    assert too_many.status_code == 400
    assert (await api.get(url, params={"fields": "id", "per_page": "201"})).status_code == 400
    beyond = await api.get(url, params={"fields": "id", "page": "11"})
    assert beyond.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    both = await api.get(url, params={"fields": "id", "page": "1", "page_token": "x"})
    assert both.status_code == 400


async def test_crm_info_block_and_sorting(sandbox: RunningSandbox, api: httpx.AsyncClient) -> None:
    state = sandbox.state
    first = state.crm_create("Leads", {"Last_Name": "A"})
    state.clock.advance(10)
    second = state.crm_create("Leads", {"Last_Name": "B"})
    url = f"{sandbox.api_domain()}/crm/v8/Leads"
    params = {
        "fields": "Last_Name",
        "sort_by": "Modified_Time",
        "sort_order": "desc",
        "per_page": "1",
    }
    body = (await api.get(url, params=params)).json()
    assert [r["id"] for r in body["data"]] == [second]
    assert set(body["data"][0]) == {"id", "Last_Name", "Created_Time", "Modified_Time"}
    info = body["info"]
    assert (info["count"], info["page"], info["more_records"]) == (1, 1, True)
    follow = await api.get(url, params={**params, "page_token": info["next_page_token"]})
    assert [r["id"] for r in follow.json()["data"]] == [first]
    assert follow.json()["info"]["more_records"] is False


async def test_books_requires_organization_id_and_answers_429_without_retry_after(
    sandbox: RunningSandbox, api: httpx.AsyncClient
) -> None:
    sandbox.state.org().books_per_minute = 2
    url = f"{sandbox.api_domain()}/books/v3/invoices"
    assert (await api.get(url)).status_code == 400
    assert (await api.get(url, params={"organization_id": "999"})).json()["code"] == 57
    ok = await api.get(url, params={"organization_id": "777"})
    assert ok.json()["page_context"] == {
        "page": 1,
        "per_page": 200,
        "has_more_page": False,
        "sort_column": "created_time",
        "sort_order": "A",
    }
    await api.get(url, params={"organization_id": "777"})
    limited = await api.get(url, params={"organization_id": "777"})
    assert limited.status_code == 429
    assert limited.json()["code"] == 44
    assert "retry-after" not in limited.headers
    sandbox.state.clock.advance(60)
    assert (await api.get(url, params={"organization_id": "777"})).status_code == 200


async def test_books_daily_cap(sandbox: RunningSandbox, api: httpx.AsyncClient) -> None:
    sandbox.state.org().books_daily = 2
    url = f"{sandbox.api_domain()}/books/v3/organizations"
    statuses = [(await api.get(url)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    sandbox.state.clock.advance(120)  # a new minute, still the same day
    assert (await api.get(url)).json()["code"] == 45


async def test_crm_concurrency_cap_answers_too_many_requests(
    sandbox: RunningSandbox, api: httpx.AsyncClient
) -> None:
    org = sandbox.state.org()
    org.crm_concurrency, org.crm_delay = 1, 0.05
    url = f"{sandbox.api_domain()}/crm/v8/org"
    answers = await asyncio.gather(*(api.get(url) for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 429, 429]
    assert next(a for a in answers if a.status_code == 429).json()["code"] == "TOO_MANY_REQUESTS"


async def test_coql_limits(sandbox: RunningSandbox, api: httpx.AsyncClient) -> None:
    url = f"{sandbox.api_domain()}/crm/v8/coql"
    over = await api.post(url, json={"select_query": "select id from Leads limit 2001"})
    assert (over.status_code, over.json()["code"]) == (400, "LIMIT_EXCEEDED")
    deep = await api.post(
        url, json={"select_query": "select id from Leads limit 2000 offset 99000"}
    )
    assert deep.json()["code"] == "LIMIT_EXCEEDED"
    assert (await api.post(url, json={"select_query": "select id from Leads"})).status_code == 204
    assert (await api.post(url, json={})).json()["code"] == "INVALID_QUERY"
