"""`SandboxState`: everything the fake Zoho knows, and the Python API tests drive it with."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from typing import Any

from bridge.sandbox.callbacks import books_payload, channel_wants, crm_payload
from bridge.sandbox.model import CrmRecord, Delivery, Grant, Hit, Org, SandboxClock

# Books entity path → (webhook wrapper key, id field); zoho.md §3.2 (UNCERTAIN detail).
BOOKS_ENTITIES: dict[str, tuple[str, str]] = {
    "invoices": ("invoice", "invoice_id"),
    "contacts": ("contact", "contact_id"),
    "customerpayments": ("payment", "payment_id"),
}


class SandboxState:
    """Orgs, tokens, records, channels, counters and the callback outbox of a fake Zoho.

    Record changes made here (or through `/_sandbox/`) fire callbacks to live channels
    and Books webhooks; `drop_rate` drops a seeded-random share of them on purpose.
    """

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
        # CRM page tokens handed out: token → (org, module, offset of the next page).
        self.page_tokens: dict[str, tuple[str, str, int]] = {}
        self._next_id = 5725767000003000000

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

    # -- CRM records -----------------------------------------------------------------

    def crm_create(self, module: str, fields: dict[str, Any], *, org: str | None = None) -> str:
        """Create a record and notify channels watching `{module}.create`."""
        target = self.org(org)
        now = self.clock.dt()
        record = CrmRecord(self.new_id(), now, now, dict(fields))
        target.crm_records.setdefault(module, {})[record.id] = record
        self._notify_crm(target, module, "insert", record.id, {})
        return record.id

    def crm_update(
        self, module: str, record_id: str, fields: dict[str, Any], *, org: str | None = None
    ) -> None:
        """Change fields of a record and notify channels watching `{module}.edit`."""
        target = self.org(org)
        record = target.crm_records[module][record_id]
        record.fields.update(fields)
        record.modified = self.clock.dt()
        self._notify_crm(target, module, "update", record_id, dict(fields))

    def crm_delete(self, module: str, record_id: str, *, org: str | None = None) -> None:
        """Move a record to the recycle bin and notify channels watching `.delete`."""
        target = self.org(org)
        record = target.crm_records[module].pop(record_id)
        target.crm_deleted.setdefault(module, []).append(
            {
                "id": record_id,
                "display_name": str(record.fields.get("Last_Name", record_id)),
                "type": "recycle",
                "deleted_by": {"name": "Sandbox User", "id": "1"},
                "created_by": {"name": "Sandbox User", "id": "1"},
                "deleted_time": self.clock.dt().isoformat(),
            }
        )
        self._notify_crm(target, module, "delete", record_id, {})

    def _notify_crm(
        self, org: Org, module: str, operation: str, record_id: str, values: dict[str, Any]
    ) -> None:
        now = self.clock.dt()
        for channel in org.channels.values():
            if channel.expiry <= now or not channel_wants(channel, module, operation):
                # "After this time, notifications for the channel are not sent." (§1.2)
                continue
            payload = crm_payload(
                channel,
                org.dc,
                module,
                operation,
                [record_id],
                values,
                int(self.clock.now() * 1000),
            )
            self._enqueue(
                Delivery("crm", org.name, channel.notify_url, payload, channel.channel_id)
            )

    # -- Books records ---------------------------------------------------------------

    def books_create(self, entity: str, fields: dict[str, Any], *, org: str | None = None) -> str:
        """Create a Books record (`entity` is a list path such as `invoices`)."""
        target = self.org(org)
        _, id_field = BOOKS_ENTITIES[entity]
        stamp = _books_time(self.clock.dt())
        record_id = self.new_id()
        record = {id_field: record_id, **fields, "created_time": stamp, "last_modified_time": stamp}
        target.books_records.setdefault(entity, {})[record_id] = record
        self._notify_books(target, entity, record)
        return record_id

    def books_update(
        self, entity: str, record_id: str, fields: dict[str, Any], *, org: str | None = None
    ) -> None:
        """Change a Books record and fire the org's webhooks for `entity`."""
        target = self.org(org)
        record = target.books_records[entity][record_id]
        record.update(fields, last_modified_time=_books_time(self.clock.dt()))
        self._notify_books(target, entity, record)

    def books_delete(self, entity: str, record_id: str, *, org: str | None = None) -> None:
        """Delete a Books record and fire the org's webhooks for `entity`."""
        target = self.org(org)
        record = target.books_records[entity].pop(record_id)
        self._notify_books(target, entity, record)

    def books_webhook(self, entity: str, url: str, *, org: str | None = None) -> None:
        """Send the Default Payload of every change to `entity` to `url`."""
        self.org(org).books_webhooks.append((entity, url))

    def _notify_books(self, org: Org, entity: str, record: dict[str, Any]) -> None:
        wrapper, _ = BOOKS_ENTITIES[entity]
        for hooked, url in org.books_webhooks:
            if hooked == entity:
                self._enqueue(Delivery("books", org.name, url, books_payload(wrapper, record)))

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


def _books_time(when: Any) -> str:
    # Books writes offsets without a colon, e.g. 2025-04-09T11:25:54-0400 (zoho.md §3.2).
    return str(when.strftime("%Y-%m-%dT%H:%M:%S%z"))
