"""What is removed from a request before it is stored or logged."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus

from bridge.domain.jsonx import escape_text

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
    """Headers as a dict (repeats joined with ", "), secret values replaced, NUL escaped
    (jsonx.escape_text: jsonb refuses it; HTTP servers should have refused it already).
    ASGI headers are bytes, read as latin-1: they hold no surrogates."""
    result: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        shown = REDACTED if is_secret_name(lowered) else value
        if "\x00" in shown or "\x00" in lowered:
            lowered, shown = escape_text(lowered), escape_text(shown)
        result[lowered] = f"{result[lowered]}, {shown}" if lowered in result else shown
    return result


TRUNCATED = "[truncated]"  # a key no header can have (brackets are not allowed in names)


def truncate_headers(headers: dict[str, str], limit: int) -> dict[str, str]:
    """The headers that fit in `limit` characters (names and values), in order; the first
    that does not is cut, and `[truncated]` says how much was left out."""
    total = sum(len(name) + len(value) for name, value in headers.items())
    if total <= limit:
        return headers
    kept: dict[str, str] = {}
    room = limit
    for name, value in headers.items():
        if len(name) + len(value) > room:
            if len(name) < room:
                kept[name] = value[: room - len(name)]
                room = 0
            break
        kept[name] = value
        room -= len(name) + len(value)
    kept[TRUNCATED] = f"{total - (limit - room)} characters of headers not kept"
    return kept


@functools.lru_cache(maxsize=1024)  # a source's deliveries repeat one query string
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


# Words that put a name under suspicion: the hints, and the exact names that hold none.
# (Only the shortest: "key" finds "apikey" too.)
_WORDS = {*_SECRET_HINTS, *(n for n in SECRET_NAMES if not any(h in n for h in _SECRET_HINTS))}
_NEEDLES = tuple(sorted(w.encode() for w in _WORDS if not any(o in w for o in _WORDS - {w})))
# Matched at a `"` or a field start in the lower-cased body (bytes.lower keeps offsets), then
# replaced in the original. A JSON string member `"key": "value` (the closing quote may be
# cut off by truncation), and a form field `key=value`.
_JSON_MEMBER = re.compile(rb'"([a-z0-9_.\-]{1,64})"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)')
_FORM_FIELD = re.compile(rb"([^=&]{1,64})=([^&]*)")
_REDACTED_BYTES = REDACTED.encode()
_REDACTED_FORM = quote(REDACTED).encode()


def scrub_body(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """The body with secret-named JSON string members and form fields blanked, and every
    occurrence of the given secret values replaced. Works on malformed bodies too."""
    scrubbed = body
    lowered = body.lower()
    # Most bodies (a Books invoice) name no secret at all: look only where a word is found.
    found = [needle for needle in _NEEDLES if needle in lowered]
    if found:
        spans = _secret_spans(lowered, found)
        if spans:
            scrubbed = _replace_spans(body, spans)
    for secret in secrets:
        # Short values would blank unrelated text; real tokens are long.
        if len(secret) >= 6:
            for encoded in _encoded_forms(secret):
                if encoded in scrubbed:
                    scrubbed = scrubbed.replace(encoded, _REDACTED_BYTES)
    return scrubbed


def _secret_spans(lowered: bytes, needles: list[bytes]) -> list[tuple[int, int, bytes]]:
    """(start, end, replacement) of each secret-named value around a needle."""
    spans: dict[int, tuple[int, int, bytes]] = {}
    for needle in needles:
        at = lowered.find(needle)
        while at >= 0:
            quote_at = lowered.rfind(b'"', max(0, at - 65), at)
            member = _JSON_MEMBER.match(lowered, quote_at) if quote_at >= 0 else None
            if member and member.start(1) <= at < member.end(1):
                if is_secret_name(member.group(1).decode("ascii")):
                    spans[member.start(2)] = (*member.span(2), _REDACTED_BYTES)
                    # The value is blanked whole: a needle inside it needs no look.
                    at = lowered.find(needle, max(member.end(2), at + len(needle)))
                    continue
            else:
                field_at = lowered.rfind(b"&", 0, at) + 1
                field = _FORM_FIELD.match(lowered, field_at)
                if (
                    field is not None
                    and field.start(1) <= at < field.end(1)
                    and is_secret_name(unquote_plus(field.group(1).decode("latin-1")))
                ):
                    spans[field.start(2)] = (*field.span(2), _REDACTED_FORM)
            at = lowered.find(needle, at + len(needle))
    return list(spans.values())


def _replace_spans(body: bytes, spans: list[tuple[int, int, bytes]]) -> bytes:
    parts: list[bytes] = []
    last = 0
    for start, end, replacement in sorted(spans):
        if start >= last:
            parts += (body[last:start], replacement)
            last = end
        elif end > last:  # overlapping matches (a form field inside a JSON string)
            parts.append(replacement)
            last = end
    parts.append(body[last:])
    return b"".join(parts)


@functools.lru_cache(maxsize=1024)
def _encoded_forms(secret: str) -> tuple[bytes, ...]:
    """The secret as it may appear in a body: raw, URL-encoded, JSON-escaped."""
    forms = [secret.encode("utf-8")]
    for form in (quote(secret, safe=""), json.dumps(secret)[1:-1]):
        if form.encode("utf-8") not in forms:
            forms.append(form.encode("utf-8"))
    return tuple(forms)
