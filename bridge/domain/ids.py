"""Identifiers: ULIDs (time-ordered, 26 Crockford base32 characters)."""

from __future__ import annotations

import random
import threading
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
# Not secrets: ids need uniqueness, not unpredictability, and SystemRandom is a syscall.
_random = random.Random()
_last = (0, 0)


# Two characters per 10 bits: 13 lookups instead of 26 shifts per id.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def _encode_time(millis: int) -> str:
    """The first 10 characters of a ULID: its 48-bit time."""
    pairs = _PAIRS
    return "".join([pairs[(millis >> shift) & 1023] for shift in range(40, -1, -10)])


def _encode_random(value: int) -> str:
    """The last 16 characters of a ULID: its 80 random bits."""
    global _random_head
    top = value >> 10
    known, head = _random_head
    if known != top:
        pairs = _PAIRS
        head = "".join([pairs[(value >> shift) & 1023] for shift in range(70, 9, -10)])
        _random_head = (top, head)
    return head + _PAIRS[value & 1023]


# Ids made within one millisecond count up from one random number: they share all but the
# last two characters of the random part, which are encoded once.
_random_head = (-1, "")


_time_text = (-1, "")  # the last time part encoded: ids made in one millisecond share it


def new_ulid(now: datetime) -> str:
    """A ULID whose time part is `now` (milliseconds), monotonic within this process.

    Within one millisecond the random part is incremented instead of drawn again, so ids
    made here sort in the order they were made (what "keep the newest" pruning relies on).
    """
    global _last, _time_text
    millis = int(now.timestamp() * 1000)
    with _lock:
        last_millis, last_random = _last
        if millis <= last_millis and last_random < (1 << _RANDOM_BITS) - 1:
            millis, random_part = last_millis, last_random + 1
        else:
            random_part = _random.getrandbits(_RANDOM_BITS)
        _last = (millis, random_part)
        if _time_text[0] != millis:
            _time_text = (millis, _encode_time(millis))
        time_text = _time_text[1]
    return time_text + _encode_random(random_part)
