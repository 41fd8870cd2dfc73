"""Delivery attempts: one record per try to publish one delivery to its push sink, kept
for the operator (what happened, when, how long it took, what the other side said)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bridge.domain.redaction import scrub_body

# Longest error text and response excerpt kept per attempt, in characters.
EXCERPT_CHARS = 500


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"  # the broker confirmed it, or the subscriber answered 2xx
    RETRY = "retry"  # failed; another attempt is scheduled
    DEAD = "dead"  # failed for good, or out of attempts: dead-lettered
    UNAVAILABLE = "unavailable"  # the sink could not be reached at all; no attempt counted


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try. `attempt` counts from 1 over the delivery's whole life, in the order the
    tries were made (a manual retry continues the numbering, it never rewrites history);
    it is given when attempts are read back (0 on one not yet stored)."""

    delivery_id: int
    at: datetime
    outcome: AttemptOutcome
    latency_ms: float
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    replica: str | None = None
    attempt: int = 0


def excerpt(text: str | bytes | None, secrets: tuple[str, ...] = ()) -> str | None:
    """A bounded, redacted excerpt of an error or a response body (secret-named JSON
    members and form fields blanked, known secret values replaced)."""
    if text is None:
        return None
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    shown = scrub_body(raw[: EXCERPT_CHARS * 4], secrets).decode("utf-8", "replace")
    return shown[:EXCERPT_CHARS] + ("…" if len(shown) > EXCERPT_CHARS else "")
