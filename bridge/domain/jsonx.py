"""Fast JSON for the hot path (orjson), with the standard library as the fallback.

orjson refuses a few things the standard library accepts (lone surrogates, say), and reads
an integer beyond 64 bits as a float, losing digits (orjson 3.13 does; older releases
refused it). Zoho could send either: refusing a delivery would lose it, and a rounded
number could make two different records look the same to deduplication. So such input
goes to the standard library, which keeps every digit.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Digits → "0", everything else kept: 20 zeros in a row then mean a run of 20 digits, the
# shortest that can be an integer beyond 64 bits (2**64 has 20 digits). A cheap C scan.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_TWENTY_DIGITS = b"0" * 20


def _may_hold_a_big_integer(data: bytes | str) -> bool:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return _TWENTY_DIGITS in data.translate(_DIGITS_AS_ZERO)


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises json.JSONDecodeError (a ValueError) on bad input."""
    if _may_hold_a_big_integer(data):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def loads_utf8(data: bytes) -> Any:
    """Parse UTF-8 JSON as orjson reads it: raises json.JSONDecodeError on anything that
    needs the standard library (bad UTF-8 included), for a caller that then takes a slower
    path that says what is wrong."""
    if _may_hold_a_big_integer(data):
        raise json.JSONDecodeError("may hold an integer beyond 64 bits", "", 0)
    return orjson.loads(data)


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
