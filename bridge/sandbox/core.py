"""`StateCore`: orgs, tokens, counters, fault switches and the callback outbox.

`SandboxState` (state.py) adds the CRM and Books record operations on top of this.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from bridge.sandbox.model import (
    BooksEntitySettings,
    Change,
    Delivery,
    Grant,
    Hit,
    Org,
    PageServed,
    PageToken,
    SandboxClock,
)

DAY = 86_400.0
# "User-specific and valid for 24 hours" (api-evangelist conventions, from Zoho's v8 Get
# Records page; UNCERTAIN).
PAGE_TOKEN_TTL = DAY


class StateCore:
    """Everything the fake Zoho knows apart from how records change."""

    def __init__(self, *, seed: int = 0, drop_rate: float = 0.0, delay: float = 0.0) -> None:
        self.clock = SandboxClock()
        self.orgs: dict[str, Org] = {}
        self.grants: dict[str, Grant] = {}
        self.hits: list[Hit] = []
        self.deliveries: list[Delivery] = []
        self.drop_rate = drop_rate
        self.delay = delay
        self.rng = random.Random(seed)
        # Zoho's v8 docs say an expiry beyond a week falls back to one hour; one
        # practitioner saw INVALID_DATA instead (zoho.md §8 q4). "clamp" or "reject".
        self.expiry_beyond_week = "clamp"
        self.outbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self.page_tokens: dict[str, PageToken] = {}
        self._next_id = 5725767000003000000
        # -- fault switches (see the package docstring) --
        self.date_skew = 0.0  # seconds added to every answer's Date header
        self.visibility_delay = 0.0  # seconds before a CRM change shows in list/COQL reads
        self.page_token_ttl = PAGE_TOKEN_TTL
        self.books_duplicate_every = 0  # >0: every n-th Books list row comes twice (B6)
        self.books_settings: dict[str, BooksEntitySettings] = {}
        self.crm_throttle = 0  # the next n CRM calls answer 429 TOO_MANY_REQUESTS
        self.books_throttle = 0  # the next n Books calls answer 429
        self.page_hooks: list[Callable[[PageServed], None]] = []

    # -- orgs ------------------------------------------------------------------------

    def add_org(
        self,
        name: str,
        dc: str = "com",
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        organization_id: str | None = None,
        **limits: Any,
    ) -> Org:
        """Create an org; credentials not given are generated. `limits` sets fields such
        as `books_per_minute`, `books_daily`, `crm_concurrency`, `crm_delay`."""
        org = Org(
            name=name,
            dc=dc,
            client_id=client_id or f"1000.{secrets.token_hex(12).upper()}",
            client_secret=client_secret or secrets.token_hex(20),
            refresh_tokens={refresh_token or f"1000.{secrets.token_hex(16)}"},
            organization_id=organization_id or str(self.new_id())[-9:],
            **limits,
        )
        self.orgs[name] = org
        return org

    def org(self, name: str | None = None) -> Org:
        """The org called `name`, or the only org when `name` is None."""
        if name is None:
            if len(self.orgs) != 1:
                raise KeyError("several sandbox orgs: say which one")
            return next(iter(self.orgs.values()))
        return self.orgs[name]

    def new_id(self) -> str:
        """A fresh record id shaped like Zoho's 19-digit ids."""
        self._next_id += 1
        return str(self._next_id)

    def grant_for(self, dc: str, authorization: str | None) -> Grant | None:
        """The live grant behind `Authorization: Zoho-oauthtoken <token>` in `dc`."""
        prefix = "Zoho-oauthtoken "
        if not authorization or not authorization.startswith(prefix):
            return None
        grant = self.grants.get(authorization[len(prefix) :].strip())
        if grant is None or grant.dc != dc or grant.expires_at <= self.clock.now():
            return None
        if grant.refresh_token not in self.orgs[grant.org].refresh_tokens:
            return None
        return grant

    # -- faults ----------------------------------------------------------------------

    def throttle(self, n: int, *, product: str = "crm") -> None:
        """Answer the next `n` calls to `product` ("crm" or "books") with 429, without
        Retry-After, as Zoho does (zoho.md §6)."""
        if product == "books":
            self.books_throttle += n
        else:
            self.crm_throttle += n

    def expire_page_tokens(self) -> None:
        """Age out every CRM page token handed out so far."""
        now = self.clock.now()
        for token, found in list(self.page_tokens.items()):
            self.page_tokens[token] = PageToken(
                found.org, found.module, found.offset, found.query, min(found.expires_at, now)
            )

    def on_page(self, hook: Callable[[PageServed], None]) -> Callable[[], None]:
        """Call `hook` after each CRM list or COQL page is served (before the answer
        leaves), e.g. to edit records between the pages of a walk. Returns a function
        that removes the hook."""
        self.page_hooks.append(hook)
        return lambda: self.page_hooks.remove(hook)

    def page_served(self, served: PageServed) -> None:
        for hook in list(self.page_hooks):
            hook(served)

    # -- counters --------------------------------------------------------------------

    def record(self, dc: str, org: str | None, label: str, status: int) -> None:
        self.hits.append(Hit(self.clock.now(), dc, org, label, status))

    def count(
        self,
        label: str | None = None,
        *,
        org: str | None = None,
        status: int | None = None,
        dc: str | None = None,
    ) -> int:
        """How many requests matched: `label` like "GET /books/v3/invoices"."""
        return sum(
            1
            for h in self.hits
            if (label is None or h.label == label)
            and (org is None or h.org == org)
            and (status is None or h.status == status)
            and (dc is None or h.dc == dc)
        )

    def counters(self) -> dict[str, dict[str, int]]:
        """Requests per label and status, e.g. {"GET /crm/v8/Leads": {"200": 3}}."""
        table: dict[str, Counter[str]] = {}
        for h in self.hits:
            table.setdefault(h.label, Counter())[str(h.status)] += 1
        return {label: dict(c) for label, c in table.items()}

    def max_in_window(self, org: str, prefix: str, window: float) -> int:
        """The most requests under `prefix` that `org` got answered (not 429) within any
        `window` seconds: proves a client stayed inside a rate."""
        times = sorted(
            h.at
            for h in self.hits
            if h.org == org and h.label.split(" ", 1)[-1].startswith(prefix) and h.status != 429
        )
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def charge_crm(self, org: Org, credits: int) -> None:
        """Spend `credits` of `org`'s CRM allowance now."""
        if credits > 0:
            org.crm_credit_log.append((self.clock.now(), credits))

    def crm_credits(self, org: str | None = None, window: float = DAY) -> int:
        """CRM credits `org` spent in the last `window` seconds (Zoho counts a rolling
        24 h: zoho.md §6): 1 per call answered, COQL 1/2/3 by LIMIT (zoho.md §4.2).
        Whether a 304 costs a credit is undocumented (C11); here it does."""
        now = self.clock.now()
        return sum(c for at, c in self.org(org).crm_credit_log if now - at < window)

    # -- delivery --------------------------------------------------------------------

    def _enqueue(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        # Decided here, in call order, so a seed gives the same drops every run.
        if self.drop_rate > 0 and self.rng.random() < self.drop_rate:
            delivery.outcome = "dropped"
            return
        self.outbox.put_nowait(delivery)

    async def flush(self) -> None:
        """Wait until every queued callback was delivered or failed."""
        await self.outbox.join()

    def delivered(self, outcome: str = "delivered") -> list[Delivery]:
        """The deliveries with the given outcome."""
        return [d for d in self.deliveries if d.outcome == outcome]

    def dropped_versions(
        self, *, org: str | None = None, product: str | None = None
    ) -> set[Change]:
        """The changes no callback announced because the sandbox dropped them on purpose:
        at least one of its deliveries was dropped and none was delivered. A poller's
        `missed` should equal exactly these (after `flush`)."""
        return {
            change
            for change, outcomes in self._outcomes(org, product).items()
            if "dropped" in outcomes and "delivered" not in outcomes
        }

    def unannounced_versions(
        self, *, org: str | None = None, product: str | None = None
    ) -> set[Change]:
        """The changes whose callbacks all failed to arrive, for any reason (dropped,
        refused by the receiver, unreachable, still pending)."""
        return {
            change
            for change, outcomes in self._outcomes(org, product).items()
            if "delivered" not in outcomes
        }

    def _outcomes(self, org: str | None, product: str | None) -> dict[Change, set[str]]:
        found: dict[Change, set[str]] = {}
        for d in self.deliveries:
            change = d.change
            if change is None or (org is not None and change.org != org):
                continue
            if product is None or change.product == product:
                found.setdefault(change, set()).add(d.outcome)
        return found
