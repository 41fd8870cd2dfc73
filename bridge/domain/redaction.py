"""What is removed from a request before it is stored or logged."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlencode

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


_SECRET_KEY_PATTERN = (
    rb"[A-Za-z0-9_\-]*(?:token|secret|signature|password|auth|api_?key)[A-Za-z0-9_\-]*"
)
_JSON_SECRET = re.compile(rb'("' + _SECRET_KEY_PATTERN + rb'"\s*:\s*")((?:[^"\\]|\\.)*)("?)', re.I)
_FORM_SECRET = re.compile(rb"((?:^|&)" + _SECRET_KEY_PATTERN + rb"=)([^&]*)", re.I)


def scrub_body(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """The body with secret-named JSON string fields and form fields blanked, and every
    occurrence of the given secret values replaced. Works on malformed bodies too."""
    scrubbed = _JSON_SECRET.sub(rb"\1" + REDACTED.encode() + rb"\3", body)
    scrubbed = _FORM_SECRET.sub(rb"\1" + quote(REDACTED).encode(), scrubbed)
    for secret in secrets:
        # Short values would blank unrelated text; real tokens are long.
        if len(secret) >= 6:
            for form in {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}:
                scrubbed = scrubbed.replace(form.encode("utf-8"), REDACTED.encode())
    return scrubbed
