"""Fast JSON for the hot path (orjson), with the standard library as the fallback.

orjson refuses a few things the standard library accepts (integers beyond 64 bits, lone
surrogates); Zoho could send those, and refusing a delivery over them would lose it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises json.JSONDecodeError (a ValueError) on bad input."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


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
