"""Fast JSON for the hot path (orjson), with the standard library as the fallback, within
bounds every reader of the stored document can handle.

orjson refuses a few things the standard library accepts (lone surrogates, say), and reads
an integer beyond 64 bits as a float, losing digits (orjson 3.13 does; older releases
refused it). Zoho could send either: refusing a delivery would lose it, and a rounded
number could make two different records look the same to deduplication. So such input
goes to the standard library, which keeps every digit.

Bounds (`Refused`, a 400 for the sender): nesting depth and number size. Without them a
body nested 1,025 levels (orjson's limit; the standard library's recursion limit is lower)
or an integer of 4,301 digits (Python's int-string limit) raised past every handler.

Text neither database can store — NUL (PostgreSQL text and jsonb refuse it) and unpaired
UTF-16 surrogates (not UTF-8 at all) — can only come from a `\\u0000` or `\\udXXX` escape
in valid JSON: `may_hold_unstorable` finds the bodies that could hold it, `escape_unstorable`
writes each such character as the six-character text `\\u0000` / `\\ud800` (lower-case hex),
the same on both databases (README, "What the webhook endpoints answer").
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# Zoho's documents nest a handful of levels (a Books invoice → line_items → taxes; CRM
# values → subform rows → lookups): 128 is far above that, and below what every reader of
# a stored document handles quickly — orjson serialises at most 254 levels (deeper ones
# fall back to the standard library, which stops near its recursion limit of 1,000).
MAX_DEPTH = 128
# Zoho's numbers are ids of 19 digits and amounts with a few decimals. A number token of
# more than 100 characters is junk; the bound also keeps int() far from Python's
# 4,300-digit limit and its quadratic cost.
MAX_NUMBER_CHARS = 100


class Refused(ValueError):
    """Valid JSON (or nearly) that the bridge does not take; the message completes
    "body ..." (e.g. "body is nested deeper than 128 levels")."""


# One C pass for two questions. Digits → "0": 20 zeros in a row then mean a run of 20
# digits, the shortest that can be an integer beyond 64 bits (2**64 has 20 digits).
# "[" → "{": the count of "{" is then an upper bound of the nesting depth, and most bodies
# stop there.
_SCAN = bytes.maketrans(b"0123456789[", b"0000000000{")
_TWENTY_DIGITS = b"0" * 20


def _as_bytes(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")


def _too_deep(doc: Any) -> bool:
    """Whether the parsed `doc` nests deeper than MAX_DEPTH (level by level, no recursion)."""
    level = [doc] if isinstance(doc, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return True
        below: list[Any] = []
        for container in level:
            values = container.values() if isinstance(container, dict) else container
            below.extend(v for v in values if isinstance(v, (dict, list)))
        level = below
    return False


def _check_depth(doc: Any) -> None:
    """For a body with more than MAX_DEPTH "{" and "[" (most have far fewer)."""
    if _too_deep(doc):
        raise Refused(f"is nested deeper than {MAX_DEPTH} levels")


def _number_text(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise Refused(f"holds a number of more than {MAX_NUMBER_CHARS} characters")


def _int(text: str) -> int:
    _number_text(text)
    return int(text)


def _float(text: str) -> float:
    _number_text(text)
    value = float(text)
    if not math.isfinite(value):  # 1e400: JSON has no infinity, and jsonb refuses it
        raise Refused("holds a number out of range (beyond a double)")
    return value


def _constant(text: str) -> Any:
    raise Refused("is not valid JSON: NaN and Infinity are not JSON numbers")


def _stdlib(data: bytes | str) -> Any:
    # Bytes are decoded here, strictly: json.loads would guess UTF-16 or decode with
    # "surrogatepass", letting raw surrogates in without an escape.
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise Refused(f"is nested deeper than {MAX_DEPTH} levels") from None


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises json.JSONDecodeError or UnicodeDecodeError (ValueErrors) on bad
    input and `Refused` beyond the bounds."""
    scanned = _as_bytes(data).translate(_SCAN)
    if _TWENTY_DIGITS in scanned:
        doc = _stdlib(data)
    else:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = _stdlib(data)  # orjson's own depth limit (1,024) ends here too
    if scanned.count(b"{") > MAX_DEPTH:
        _check_depth(doc)
    return doc


def loads_utf8(data: bytes) -> Any:
    """Parse UTF-8 JSON as orjson reads it: raises json.JSONDecodeError on anything that
    needs the standard library (bad UTF-8 included), for a caller that then takes a slower
    path that says what is wrong. Raises `Refused` beyond the bounds."""
    scanned = data.translate(_SCAN)
    if _TWENTY_DIGITS in scanned:
        raise json.JSONDecodeError("may hold an integer beyond 64 bits", "", 0)
    doc = orjson.loads(data)
    if scanned.count(b"{") > MAX_DEPTH:
        _check_depth(doc)
    return doc


# A `\u` escape of NUL or of any surrogate (a valid pair is caught too: it costs a walk).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def may_hold_unstorable(data: bytes) -> bool:
    """Whether JSON text may decode to a string holding NUL or a lone surrogate. In valid
    JSON both need an escape: raw control characters are refused, and bytes are decoded
    strictly. A body without a backslash, the usual one, costs a memchr: searching for
    `\\u` itself cost twenty times as much (JSON is full of "u")."""
    return b"\\" in data and _UNSTORABLE_ESCAPE.search(data) is not None


def is_storable(text: str) -> bool:
    """No NUL and no lone surrogate: text both databases store as it is."""
    return "\x00" not in text and (text.isascii() or _UNSTORABLE.search(text) is None)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_text(text: str) -> str:
    """`text` with each NUL and lone surrogate written as the six characters `\\u0000`..."""
    if "\x00" not in text and text.isascii():
        return text
    return _UNSTORABLE.sub(_escape, text)


def escape_unstorable(value: Any) -> Any:
    """A copy of a parsed document with `escape_text` applied to every string, keys too
    (recursive: documents are at most MAX_DEPTH deep)."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {escape_text(k): escape_unstorable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_unstorable(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical(value: Any) -> bytes:
    """Compact, keys sorted: the same document always gives the same bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )
