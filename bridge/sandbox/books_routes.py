"""Books v3 reads: entity lists, single records, organizations and failed workflow
actions (zoho.md §3.4, §4.1; reconciliation.md B1-B6)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge.domain.books_entities import books_entity
from bridge.sandbox.books_gate import books_call
from bridge.sandbox.model import BooksEntitySettings
from bridge.sandbox.replies import answer, state_of

INVALID_URL = {"code": 5, "message": "Invalid URL Passed"}
# UNCERTAIN: "List failed workflow actions" exists (zoho.md §3.4) but its path and shape
# were not found; kept in sync with FAILED_ACTIONS_PATH/KEY in bridge/zoho/books.py.
FAILED_ACTIONS_PATH = "/books/v3/settings/workflows/failedactions"
FAILED_ACTIONS_KEY = "failed_actions"


class _Invalid(Exception):
    """A refused parameter: Books answers HTTP 400 with a numeric code."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.body = {"code": 2, "message": message}


def _parse_time(raw: str) -> datetime:
    # Books writes offsets without a colon (-0400) and takes naive UTC in filters (§4.1).
    when = datetime.fromisoformat(raw)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _page(params: Any) -> tuple[int, int]:
    try:
        page = max(1, int(params.get("page", "1")))
        per_page = min(200, max(1, int(params.get("per_page", "200"))))
    except ValueError:
        raise _Invalid("Invalid value passed") from None
    return page, per_page


def _select(
    params: Any, rows: list[dict[str, Any]], settings: BooksEntitySettings, id_field: str
) -> list[Any]:
    """Filter and order rows as `settings` say this entity does."""
    if "last_modified_time" in params and settings.filter != "ignored":
        try:
            since = _parse_time(params["last_modified_time"])
        except ValueError:
            raise _Invalid("Invalid value passed for last_modified_time") from None
        exact = settings.filter == "equal"  # hotglue's journals (B2)
        rows = [
            r
            for r in rows
            if (modified := _parse_time(r["last_modified_time"])) == since
            or (not exact and modified > since)
        ]
    column = params.get("sort_column", "created_time")
    order = params.get("sort_order", "A")
    if column not in ("created_time", "last_modified_time") or order not in ("A", "D"):
        raise _Invalid("Invalid value passed for sort_column")
    if column == "last_modified_time" and not settings.sortable:
        # Whether each entity sorts by it is UNCERTAIN (B4); this one refuses.
        raise _Invalid("Invalid value passed for sort_column")
    rows.sort(key=lambda r: (_parse_time(r[column]), int(r[id_field])), reverse=order == "D")
    return rows


async def list_entity(request: Request) -> Response:
    path = request.path_params["entity"]
    label = f"GET /books/v3/{path}"
    admitted = books_call(request, label)
    if isinstance(admitted, Response):
        return admitted
    org, headers = admitted
    entity = books_entity(path)
    if entity is None or entity.path != path:
        return answer(request, label, 404, INVALID_URL, org=org.name, headers=headers)
    state = state_of(request)
    params = request.query_params
    try:
        page, per_page = _page(params)
        stored = [dict(r) for r in org.books_records.get(path, {}).values()]
        rows = _select(params, stored, state.settings_for(path), entity.id_field)
    except _Invalid as bad:
        return answer(request, label, 400, bad.body, org=org.name, headers=headers)
    if state.books_duplicate_every > 0:
        # "Zoho sometimes returns duplicates" (B6): every n-th row twice, so a duplicate
        # can also straddle two pages.
        every = state.books_duplicate_every
        rows = [r for i, row in enumerate(rows) for r in [row] * (1 + ((i + 1) % every == 0))]
    body = {
        "code": 0,
        "message": "success",
        path: rows[(page - 1) * per_page : page * per_page],
        "page_context": {
            "page": page,
            "per_page": per_page,
            "has_more_page": page * per_page < len(rows),
            "sort_column": params.get("sort_column", "created_time"),
            "sort_order": params.get("sort_order", "A"),
        },
    }
    return answer(request, label, 200, body, org=org.name, headers=headers)


async def get_record(request: Request) -> Response:
    path, record_id = request.path_params["entity"], request.path_params["record_id"]
    label = f"GET /books/v3/{path}/{{id}}"
    admitted = books_call(request, label)
    if isinstance(admitted, Response):
        return admitted
    org, headers = admitted
    entity = books_entity(path)
    if entity is None or entity.path != path:
        return answer(request, label, 404, INVALID_URL, org=org.name, headers=headers)
    record = org.books_records.get(path, {}).get(record_id)
    if record is None:
        # UNCERTAIN: Books' answer for a missing record; 404 with a numeric code here.
        missing = {"code": 1002, "message": f"{entity.key.capitalize()} does not exist."}
        return answer(request, label, 404, missing, org=org.name, headers=headers)
    body = {"code": 0, "message": "success", entity.key: dict(record)}
    return answer(request, label, 200, body, org=org.name, headers=headers)


async def failed_actions(request: Request) -> Response:
    label = f"GET {FAILED_ACTIONS_PATH}"
    admitted = books_call(request, label)
    if isinstance(admitted, Response):
        return admitted
    org, headers = admitted
    try:
        page, per_page = _page(request.query_params)
    except _Invalid as bad:
        return answer(request, label, 400, bad.body, org=org.name, headers=headers)
    rows = list(reversed(org.failed_actions))  # newest first, like the Workflow Logs page
    body = {
        "code": 0,
        "message": "success",
        FAILED_ACTIONS_KEY: rows[(page - 1) * per_page : page * per_page],
        "page_context": {
            "page": page,
            "per_page": per_page,
            "has_more_page": page * per_page < len(rows),
        },
    }
    return answer(request, label, 200, body, org=org.name, headers=headers)


async def organizations(request: Request) -> Response:
    label = "GET /books/v3/organizations"
    admitted = books_call(request, label, needs_org=False)
    if isinstance(admitted, Response):
        return admitted
    org, headers = admitted
    body = {
        "code": 0,
        "message": "success",
        "organizations": [
            {"organization_id": org.organization_id, "name": org.name, "is_default_org": True}
        ],
    }
    return answer(request, label, 200, body, org=org.name, headers=headers)
