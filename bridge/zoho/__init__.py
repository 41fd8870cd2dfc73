"""Client side of Zoho: data centres, OAuth tokens, API budgets and the HTTP client.

Adapters that need storage (tokens, budgets) sit behind the protocols in `ports`; the
in-memory implementations in `memory` serve one process and the tests.
"""

from bridge.zoho.books import BooksStrategy
from bridge.zoho.budget import Budget, BudgetLeft
from bridge.zoho.client import CheckResult, ZohoClient
from bridge.zoho.connection import Connection, Limits
from bridge.zoho.coql import CoqlKey, keyset_query
from bridge.zoho.errors import (
    BudgetExhausted,
    ItemError,
    TokenRequestsThrottled,
    ZohoApiError,
    ZohoAuthError,
    ZohoError,
    ZohoPartialFailure,
    ZohoTransientError,
)
from bridge.zoho.memory import MemoryBudgetStore, MemoryTokenStore
from bridge.zoho.meter import CallMeter
from bridge.zoho.oauth import AccessToken, TokenManager
from bridge.zoho.pages import BooksPage, CoqlPage, CrmPage
from bridge.zoho.ports import BudgetStore, Reservation, TokenStore
from bridge.zoho.ratelimit import BooksRateLimit
from bridge.zoho.retry import RetryPolicy
from bridge.zoho.shares import Purpose, Shares
from bridge.zoho.tokens import StoredToken
from bridge.zoho.watch import WatchSpec

__all__ = [
    "AccessToken",
    "BooksPage",
    "BooksRateLimit",
    "BooksStrategy",
    "Budget",
    "BudgetExhausted",
    "BudgetLeft",
    "BudgetStore",
    "CallMeter",
    "CheckResult",
    "Connection",
    "CoqlKey",
    "CoqlPage",
    "CrmPage",
    "ItemError",
    "Limits",
    "MemoryBudgetStore",
    "MemoryTokenStore",
    "Purpose",
    "Reservation",
    "RetryPolicy",
    "Shares",
    "StoredToken",
    "TokenManager",
    "TokenRequestsThrottled",
    "TokenStore",
    "WatchSpec",
    "ZohoApiError",
    "ZohoAuthError",
    "ZohoClient",
    "ZohoError",
    "ZohoPartialFailure",
    "ZohoTransientError",
    "keyset_query",
]
