"""Where the next page is: CRM `page` then `page_token`, Books `has_more_page`. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.zoho.errors import ZohoApiError

# "Above 2,000 records use page_token (from info.next_page_token)"; page and page_token
# cannot be combined (zoho.md §4.2).
CRM_PAGE_LIMIT = 2000
MAX_PER_PAGE = 200


@dataclass(frozen=True, slots=True)
class CrmCursor:
    """Which CRM page to ask for next: by number, or by `page_token`."""

    page: int = 1
    page_token: str | None = None

    def params(self) -> dict[str, str]:
        if self.page_token is not None:
            return {"page_token": self.page_token}
        return {"page": str(self.page)}


def next_crm_cursor(cursor: CrmCursor, info: Mapping[str, Any], per_page: int) -> CrmCursor | None:
    """The cursor after a page whose `info` is given, or None after the last page."""
    if not info.get("more_records"):
        return None
    token = info.get("next_page_token")
    if cursor.page_token is not None or cursor.page * per_page >= CRM_PAGE_LIMIT:
        if not isinstance(token, str) or not token:
            # Stopping here would silently lose records; make the gap loud instead.
            raise ZohoApiError("CRM said more_records but gave no next_page_token", body=info)
        return CrmCursor(page=cursor.page + 1, page_token=token)
    return CrmCursor(page=cursor.page + 1)


def books_has_more(body: Mapping[str, Any]) -> bool:
    """Whether a Books list answer says another page follows."""
    context = body.get("page_context")
    return isinstance(context, Mapping) and bool(context.get("has_more_page"))


# Zoho refuses a page token that aged out (valid 24 h, user-specific) or that no longer
# matches the query it was issued for. Codes from an OAS-derived Get Records reference
# (`EXPIRED_VALUE` "Page token expired"; `TOKEN_BOUND_DATA_MISMATCH` "The page_token given
# seems to be invalid or input param is added or altered or deleted"), both HTTP 400.
# UNCERTAIN: not in zoho/crm-oas; Activepieces restarts on any 400 to a token request.
STALE_TOKEN_CODES = frozenset({"EXPIRED_VALUE", "TOKEN_BOUND_DATA_MISMATCH"})


def is_stale_page_token(status: int, body: Any) -> bool:
    """Whether an answer to a `page_token` request says the token is expired or invalid,
    so the walk should start again at page 1 (reconciliation.md C5, e #13)."""
    if status != 400 or not isinstance(body, Mapping):
        return False
    code = str(body.get("code", ""))
    if code in STALE_TOKEN_CODES:
        return True
    details = body.get("details")
    named = isinstance(details, Mapping) and "page_token" in (
        details.get("param_name"),
        details.get("api_name"),
        details.get("param"),
    )
    return code == "INVALID_DATA" and named
