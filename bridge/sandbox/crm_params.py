"""Reading a CRM list request as Zoho does: parameters, `If-Modified-Since`, the
`converted` switch and page tokens. Errors carry Zoho's shapes (zoho.md §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from bridge.sandbox.model import CrmRecord, PageToken
from bridge.sandbox.replies import crm_error

CONVERTED = ("false", "true", "both")
# The page-token errors of an OAS-derived v8 Get Records reference (UNCERTAIN: not in
# zoho/crm-oas): an aged-out token, and one that is unknown or whose query changed.
EXPIRED = ("EXPIRED_VALUE", "Page token expired")
MISMATCH = (
    "TOKEN_BOUND_DATA_MISMATCH",
    "The page_token given seems to be invalid or input param is added or altered or deleted",
)


class BadParam(Exception):
    """One refused parameter; `body` is the error to answer with HTTP 400."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.body = crm_error(code, message, **details)


def since_header(request: Request) -> datetime | None:
    """`If-Modified-Since` as an aware datetime (it must carry an offset, §4.2)."""
    raw = request.headers.get("if-modified-since")
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadParam(
            "INVALID_DATA", "invalid If-Modified-Since", header="If-Modified-Since"
        ) from None
    if when.tzinfo is None:
        raise BadParam(
            "INVALID_DATA", "If-Modified-Since needs an offset", header="If-Modified-Since"
        )
    return when


def int_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        raise BadParam("INVALID_DATA", "invalid data", param=name) from None


def converted_param(request: Request) -> str:
    """`converted=false|true|both`; Leads lists hide converted leads by default (C8)."""
    value = request.query_params.get("converted", "false")
    if value not in CONVERTED:
        raise BadParam("INVALID_DATA", "invalid data", param_name="converted")
    return value


def wanted(module: str, record: CrmRecord, converted: str) -> bool:
    """Whether a `converted` choice keeps `record` (only Leads are ever converted)."""
    if module != "Leads" or converted == "both":
        return True
    return record.converted == (converted == "true")


def bound_query(request: Request) -> tuple[tuple[str, str], ...]:
    """What a page token is bound to: every parameter but the paging ones, and the
    `If-Modified-Since` header ("input param is added or altered or deleted")."""
    pairs = [
        (k, v) for k, v in request.query_params.multi_items() if k not in ("page", "page_token")
    ]
    pairs.append(("If-Modified-Since", request.headers.get("if-modified-since", "")))
    return tuple(sorted(pairs))


def resolve_token(
    tokens: dict[str, PageToken],
    token: str,
    org: str,
    module: str,
    query: tuple[tuple[str, str], ...],
    now: float,
) -> int:
    """The offset a page token points at, or the error Zoho answers for it."""
    found = tokens.get(token)
    if found is None or (found.org, found.module, found.query) != (org, module, query):
        raise BadParam(*MISMATCH, param_name="page_token")
    if found.expires_at <= now:
        raise BadParam(*EXPIRED, api_name="page_token", json_path="$.query.page_token")
    return found.offset
