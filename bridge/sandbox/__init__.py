"""A fake Zoho over real HTTP: accounts, CRM and Books APIs, callbacks, for tests and demos.

It speaks the shapes in the project's Zoho notes (accounts §5, CRM §1/§2/§4.2, Books
§3/§4.1, limits §6). Choices the real Zoho leaves undocumented are marked where made.

It reproduces every silent-loss cause the reconciliation research lists, each switched on
from Python (`SandboxState`) or over HTTP (`/_sandbox/...`, JSON bodies):

- Same-second ties: record times are whole seconds; `state.clock.freeze()` stops the wall
  clock, `clock.advance(s)` moves it. Lists and COQL order ties by id.
- Late visibility: `state.visibility_delay = s`, or `visible_after=s` per change
  (`crm_create/crm_update/crm_convert`; POST/PATCH `/orgs/{org}/crm/{module}[/{id}]` with
  `"visible_after"`): list and COQL reads show the previous version until then.
- Edits during a walk: `state.on_page(hook)`; `hook(PageServed)` runs after each CRM list
  or COQL page is served. Pages are offsets into the current order.
- Page tokens: valid `state.page_token_ttl` seconds (24 h); `state.expire_page_tokens()`
  or POST `/page-tokens/expire`. Expired: 400 `EXPIRED_VALUE`; unknown or used with another
  query: 400 `TOKEN_BOUND_DATA_MISMATCH`.
- Idle modules: `If-Modified-Since` with nothing newer answers 304; an empty list 204.
- 429 without Retry-After: CRM over `crm_concurrency` in flight, or `state.throttle(n)`
  (`product="books"` for Books); Books over `books_per_minute`/`books_daily`. PUT
  `/faults` with `crm_throttle`/`books_throttle`.
- Clock skew: every answer's `Date` is the sandbox clock plus `state.date_skew` seconds.
- Converted leads: `state.crm_convert(lead_id)` (POST `/orgs/{org}/crm/Leads/{id}/convert`);
  hidden from Leads lists unless `converted=true|both`, never in the deleted list;
  callbacks fired per `state.convert_callbacks` (UNCERTAIN: Leads update + Contacts insert).
- Books duplicates: `state.books_duplicate_every = n` lists every n-th row twice.
- Books entities: all nine of `bridge.domain.books_entities`; `books_entity_settings(
  entity, filter="at_or_after"|"equal"|"ignored", sortable=bool)` (PUT
  `/books-settings/{entity}`) sets what `last_modified_time` and
  `sort_column=last_modified_time` do. Books answers carry `X-Rate-Limit-*` (daily quota).
- Books webhooks: `books_webhook(entity, url, actions=("insert", "update", "delete"))`
  (POST `/orgs/{org}/books-webhooks` `{"entity", "url", "actions"}`) fires like a workflow
  rule on those action types (B8); the payload never says which action fired it.
- Failed Books deliveries are listed at "List failed workflow actions" (path UNCERTAIN).
- Dropped callbacks: `drop_rate` (seeded; PUT `/delivery` or `/faults` with `drop_rate`,
  `seed`); `state.dropped_versions()` (GET `/dropped`) names the changes no callback
  announced. POST `/orgs/{org}/burst` `{"crm": {"Leads": 20}, "books": {"invoices": 5},
  "edits": 10}` makes a burst of changes for a demo.
- CRM credits: `state.crm_credits(org)` (GET `/counters`): 1 a call, COQL 1/2/3 by LIMIT.
"""

from bridge.sandbox.app import create_sandbox_app
from bridge.sandbox.model import BooksEntitySettings, Change, PageServed
from bridge.sandbox.server import RunningSandbox, main, run_sandbox, serve_app, serve_sandbox
from bridge.sandbox.state import SandboxState

__all__ = [
    "BooksEntitySettings",
    "Change",
    "PageServed",
    "RunningSandbox",
    "SandboxState",
    "create_sandbox_app",
    "main",
    "run_sandbox",
    "serve_app",
    "serve_sandbox",
]
