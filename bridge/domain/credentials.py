"""Shared-secret tokens: stored as SHA-256 digests, matched in constant time.

Several tokens can be valid at once so they can be rotated without a gap.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@functools.lru_cache(maxsize=1024)
def token_digest(token: str) -> str:
    # Cached: each channel's callbacks present the same token thousands of times a day.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(length: int = 40) -> str:
    """A random URL-safe token of exactly `length` characters (Zoho CRM allows at most 50)."""
    return secrets.token_urlsafe(length)[:length]


def matches_any(presented: str, digests: Iterable[str]) -> bool:
    """Whether `presented` is one of the tokens behind `digests`.

    Every digest is compared (no early exit) with `hmac.compare_digest`, so the time taken
    says nothing about which digest, or how much of one, matched.
    """
    candidate = token_digest(presented).encode("ascii")
    found = False
    for digest in digests:
        found |= hmac.compare_digest(candidate, digest.encode("ascii"))
    return found


@dataclass(frozen=True, slots=True)
class ChannelToken:
    """One accepted CRM channel token; `valid_until` ends a rotated-out token's grace."""

    sha256: str
    valid_until: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.valid_until is None or now < self.valid_until


def valid_digests(tokens: Iterable[ChannelToken], now: datetime) -> list[str]:
    return [token.sha256 for token in tokens if token.valid_at(now)]
