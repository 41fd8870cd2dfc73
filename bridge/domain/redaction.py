"""What is removed from a request before it is stored or logged."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus

REDACTED = "[redacted]"
_REDACTED_QUERY = quote(REDACTED)

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


@functools.lru_cache(maxsize=4096)
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
    """The query string with secret parameter values replaced (the rest kept verbatim)."""
    if not query:
        return ""
    parts = []
    for part in query.split("&"):
        name = part.partition("=")[0]
        parts.append(f"{name}={_REDACTED_QUERY}" if is_secret_name(unquote_plus(name)) else part)
    return "&".join(parts)


def redact_mapping(values: dict[str, object]) -> dict[str, object]:
    """A shallow copy of `values` with secret-named keys replaced (CRM `token`, `query_params`)."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in values.items()}


# Cheap first pass: most bodies (a Books invoice) name no secret at all.
# (Lower-casing and `in` is several times faster than an IGNORECASE regex search.)
_HINTS = (b"token", b"secret", b"signature", b"password", b"auth", b"apikey", b"api_key")
# A JSON string member `"key": "value` (the closing quote may be cut off by truncation).
_JSON_MEMBER = re.compile(rb'"([A-Za-z0-9_.\-]{1,64})"(\s*:\s*")((?:[^"\\]|\\.)*)("?)')
_FORM_FIELD = re.compile(rb"(^|&)([^=&]{1,64})=([^&]*)")
_REDACTED_BYTES = REDACTED.encode()
_REDACTED_FORM = quote(REDACTED).encode()


def _json_member(match: re.Match[bytes]) -> bytes:
    key = match.group(1)
    if not is_secret_name(key.decode("ascii")):
        return match.group(0)
    return b'"' + key + b'"' + match.group(2) + _REDACTED_BYTES + match.group(4)


def _form_field(match: re.Match[bytes]) -> bytes:
    if not is_secret_name(match.group(2).decode("latin-1")):
        return match.group(0)
    return match.group(1) + match.group(2) + b"=" + _REDACTED_FORM


def scrub_body(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """The body with secret-named JSON string members and form fields blanked, and every
    occurrence of the given secret values replaced. Works on malformed bodies too."""
    scrubbed = body
    lowered = body.lower()
    if any(hint in lowered for hint in _HINTS):
        if b'"' in body:
            scrubbed = _JSON_MEMBER.sub(_json_member, scrubbed)
        if b"=" in body:
            scrubbed = _FORM_FIELD.sub(_form_field, scrubbed)
    for secret in secrets:
        # Short values would blank unrelated text; real tokens are long.
        if len(secret) >= 6:
            for encoded in _encoded_forms(secret):
                if encoded in scrubbed:
                    scrubbed = scrubbed.replace(encoded, _REDACTED_BYTES)
    return scrubbed


@functools.lru_cache(maxsize=1024)
def _encoded_forms(secret: str) -> tuple[bytes, ...]:
    """The secret as it may appear in a body: raw, URL-encoded, JSON-escaped."""
    forms = [secret.encode("utf-8")]
    for form in (quote(secret, safe=""), json.dumps(secret)[1:-1]):
        if form.encode("utf-8") not in forms:
            forms.append(form.encode("utf-8"))
    return tuple(forms)
