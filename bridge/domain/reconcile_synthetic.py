"""What a reconciled (synthetic) event says: its operation, and whether the version may
stand for several edits (reconciliation.md e.14).

A poll sees versions, not edits: one event per observed version, honest about it.

- `deleted` for a deleted version (CRM `/{module}/deleted`, e.8; the Books sweep, e.9).
- `created` when no earlier state of the record is known and either it was never edited
  (`created_at == modified_at`) or it was created inside the span this run reads
  (`created_at ≥ read_from`, i.e. after the previous watermark - overlap). Without the
  second condition the first run of a new watch would call every old record "created".
- `updated` otherwise.

`collapsed` (the envelope's `zohocollapsed`) is a heuristic, true when edits may hide in
this version: no earlier state is known and the record was edited after its creation (or
its creation time is unknown), or the last known state predates the previous run (a whole
poll interval passed in which an unannounced version may have been seen pending and then
superseded, or never seen). A record created and never edited is exactly one change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bridge.domain.events import Operation, Product
from bridge.domain.reconcile_cursor import Version
from bridge.domain.reconcile_match import KnownEvent, earlier_known


@dataclass(frozen=True, slots=True)
class Synthetic:
    operation: Operation
    collapsed: bool


def synthesize(
    product: Product,
    version: Version,
    events: Iterable[KnownEvent],
    *,
    read_from: datetime,
    previous_run_at: datetime | None,
) -> Synthetic:
    """The operation and collapsed flag of the reconciled event for `version`.

    `events`: the stored events of the record (at least the newest before this version).
    `read_from`: this run's lower bound. `previous_run_at`: Zoho's `Date` at the start of
    the previous completed run, None for the first run."""
    if version.deleted:
        return Synthetic(Operation.DELETED, collapsed=False)
    known = earlier_known(product, version, events)
    created = version.created_at
    if known is None:
        fresh = created is not None and (created == version.modified_at or created >= read_from)
        edited = created is None or created < version.modified_at
        return Synthetic(Operation.CREATED if fresh else Operation.UPDATED, collapsed=edited)
    stale = previous_run_at is not None and known < previous_run_at
    return Synthetic(Operation.UPDATED, collapsed=stale)
