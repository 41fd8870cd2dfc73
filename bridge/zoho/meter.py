"""`CallMeter`: what one caller (e.g. one reconciliation watch) cost at Zoho."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class CallMeter:
    """Counts of requests a caller made, filled in by the transport as they are sent.

    `calls` counts every request sent, retries and 401 re-sends included, because Zoho
    counts each one. `crm_credits` are the credits reserved for CRM requests (1 per call,
    COQL by LIMIT: zoho.md §4.2); `books_calls` the Books requests (Books counts calls).
    """

    calls: int = 0
    crm_credits: int = 0
    books_calls: int = 0

    def count(self, product: str, credits: int) -> None:
        """Record one request sent to `product` ("crm" or "books")."""
        self.calls += 1
        if product == "crm":
            self.crm_credits += credits
        elif product == "books":
            self.books_calls += 1
