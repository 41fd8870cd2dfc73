"""What is removed from a request before it is stored or logged."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

REDACTED = "[redacted]"

# Header and parameter names (lower case) whose values are secrets. Anything that looks
# like a credential is redacted: a stored request must never be a way to steal one.
SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-bridge-token",
        "x-zoho-webhook-signature",
        "x-api-key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "refresh_token",
        "client_secret",
        "secret",
        "signature",
        "password",
        "key",
        "auth",
        "authtoken",
    }
)
_SECRET_HINTS = ("token", "secret", "signature", "password", "auth", "apikey", "api-key")


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_NAMES or any(hint in lowered for hint in _SECRET_HINTS)


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict (repeats joined with ", "), secret values replaced."""
    result: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        shown = REDACTED if is_secret_name(lowered) else value
        result[lowered] = f"{result[lowered]}, {shown}" if lowered in result else shown
    return result


def redact_query(query: str) -> str:
    """The query string with secret parameter values replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs])


def redact_mapping(values: dict[str, object]) -> dict[str, object]:
    """A shallow copy of `values` with secret-named keys replaced (CRM `token`, `query_params`)."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in values.items()}
