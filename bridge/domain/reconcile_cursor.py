"""Where a reconciliation run reads from, when a descending walk may stop, and the cursor a
successful run leaves behind. Pure: Zoho's clock is passed in, nothing is read.

A *version* is one state of one record as a listing shows it: (record id, modified time).
The cursor is (watermark, ids seen at exactly the watermark) — reconciliation.md e.1.
Which finding each rule answers:

- Reads start at `watermark - overlap`, inclusive, never at `watermark + 1 s` or `> watermark`:
  several records share one second (a.2 #1; C2, C3), and records become visible to the API
  late (a.2 #2; C15, B9). Re-reads are harmless because emission is decided per version key
  against the event store, not by this cursor (e.6).
- The watermark advances to Zoho's `Date` at the *start* of the run minus `settle`, not to the
  newest record seen: a change made while the run walks is re-read next time (a.2 #5, e.2),
  and a record that keeps changing is never hidden behind an exclusion window (a.2 #3) — the
  overlap is a lower bound, recent records are always read.
- It is held at the oldest version still waiting in its grace period (e.6), so that version
  is re-read until it is either announced or emitted.
- Zoho's clock, never ours: a skewed bridge clock cannot push the cursor past unread records
  (a.2 #5; Activepieces reads the `Date` header).
- Only a completed run moves the cursor, and never backwards (a.2 #4).

Guarantee (checked by tests/test_domain_reconcile_simulation.py): a version that stays
listed through a whole completed run is read by it or an earlier run, provided it became
visible within `overlap + settle` of its modified time and the walk holds `walk_done`'s
assumptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.domain.events import Product


def zoho_second(value: datetime, what: str) -> datetime:
    """`value` checked to be a Zoho time: timezone-aware, whole seconds (C2, B5)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, not {value!r}")
    if value.microsecond:
        raise ValueError(f"{what} must be whole seconds (Zoho's precision), not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Version:
    """One listed state of a record. `modified_at` is Zoho's `Modified_Time` /
    `last_modified_time` (for a CRM deletion: `deleted_time`; for a Books deletion found by
    the sweep: the record's last known `last_modified_time`)."""

    record_id: str
    modified_at: datetime
    created_at: datetime | None = None
    deleted: bool = False

    def __post_init__(self) -> None:
        if not self.record_id:
            raise ValueError("a version needs a record id")
        zoho_second(self.modified_at, "modified_at")
        if self.created_at is not None:
            zoho_second(self.created_at, "created_at")


@dataclass(frozen=True, slots=True)
class Cursor:
    """What a watch has covered: every version modified before `watermark`, and the versions
    at exactly `watermark` whose ids are listed. `watermark` None: nothing yet."""

    watermark: datetime | None = None
    ids_at_watermark: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.watermark is not None:
            zoho_second(self.watermark, "watermark")
        elif self.ids_at_watermark:
            raise ValueError("ids at the watermark need a watermark")


@dataclass(frozen=True, slots=True)
class CursorPolicy:
    """`overlap`: how far below the watermark each run re-reads (late visibility, a.2 #2).
    `settle`: how far behind Zoho's `Date` the watermark stays (C15's "about a minute")."""

    overlap: timedelta
    settle: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if self.overlap < timedelta(0) or self.settle < timedelta(0):
            raise ValueError("overlap and settle cannot be negative")


CRM_CURSOR = CursorPolicy(overlap=timedelta(minutes=5))
BOOKS_CURSOR = CursorPolicy(overlap=timedelta(minutes=15))  # workflows run late (B9)


def default_cursor_policy(product: Product) -> CursorPolicy:
    return CRM_CURSOR if product is Product.CRM else BOOKS_CURSOR


def read_from(cursor: Cursor, policy: CursorPolicy, start: datetime) -> datetime:
    """The oldest modified time a run reads, inclusive: `watermark - overlap`, never before
    the watch's `start` (nothing older is in scope); `start` when nothing is covered yet.

    A backfill from `since` is `read_from(Cursor(), policy, since)`, then `advance` of the
    watch's real cursor: the stored cursor never moves back (e.13)."""
    zoho_second(start, "start")
    if cursor.watermark is None:
        return start
    return max(cursor.watermark - policy.overlap, start)


def covers(cursor: Cursor, version: Version) -> bool:
    """Whether `cursor` already went past `version`: modified before the watermark, or at
    it with its id recorded. Same-second ties are told apart by id, never by `+1 s`."""
    if cursor.watermark is None:
        return False
    if version.modified_at != cursor.watermark:
        return version.modified_at < cursor.watermark
    return version.record_id in cursor.ids_at_watermark


def is_new(cursor: Cursor, version: Version) -> bool:
    """Whether `version` is beyond what `cursor` covered (not an overlap re-read)."""
    return not covers(cursor, version)


def counted(previous: Cursor, new: Cursor, version: Version) -> bool:
    """The "versions seen" counting rule: count a version in the run whose new cursor first
    covers it. Versions above the new watermark are re-read next run and counted then, so
    no version is counted twice across runs (the cursor never moves back)."""
    return is_new(previous, version) and covers(new, version)


def walk_done(page: Sequence[Version], since: datetime) -> bool:
    """For a newest-first walk (e.3): stop after this page if it reached a version older
    than `since`. Versions at exactly `since` are still read, so a page that ends on a tie
    at `since` does not stop the walk (the next page may hold more of that second).

    The walk is skip-free when an edit made during it moves the record to the top (caught
    next run, since its time is after this run's `Date`) — but it assumes the listing keeps
    one tie order during the walk and that no row above the reading position is deleted
    mid-walk (that would shift a row into an already-read page). `page_token` paging (CRM)
    is expected to hold both; page numbers (Books) are at Zoho's mercy (B6)."""
    return any(v.modified_at < since for v in page)


def shifted_from(
    pages: Sequence[tuple[datetime, datetime]], deleted: Iterable[datetime]
) -> datetime | None:
    """Where a newest-first walk may have skipped rows because records were deleted while
    it paged, or None. `pages`: each page's Zoho `Date` and the modified time of its first
    row, in the order read; `deleted`: the deletion times Zoho lists from the walk's start.

    Pages are offsets into the current order (`page` numbers surely, tokens maybe: C5), so
    a record deleted above the reading position moves the next rows up into a page
    already read, and they are skipped. Such a row sits just before the first row of a
    page served after the deletion, so it is not older than that row. The earliest such
    first row (pages served from one second before the first deletion on, page 1 never)
    is where the cursor must stay for the next run to read the skipped rows again."""
    first = min(deleted, default=None)
    if first is None:
        return None
    after = [row for served, row in pages[1:] if served >= first - timedelta(seconds=1)]
    return min(after, default=None)


def in_window(rows: Iterable[Version], since: datetime) -> list[Version]:
    """The rows a run matches: modified at or after `since` (a walk's last page, or a full
    scan, also returns older rows, which earlier runs covered)."""
    return [v for v in rows if v.modified_at >= since]


def advance(
    previous: Cursor,
    *,
    completed: bool,
    zoho_started_at: datetime,
    seen: Iterable[Version],
    pending: Iterable[Version] = (),
    held: Iterable[datetime] = (),
    policy: CursorPolicy,
) -> Cursor | None:
    """The cursor after a run; None (keep `previous`) unless the run `completed` (a.2 #4):
    every page down to `read_from` was read and its results stored.

    `zoho_started_at` is Zoho's `Date` header from before the first page (whole seconds).
    `pending` are the versions still inside their grace period (e.6): the watermark stays at
    the oldest of them so the next run, reading from below it, sees them again. `held` are
    other times it must not pass (`shifted_from`: rows a walk may have skipped).

    New watermark = max(previous, min(zoho_started_at - settle, oldest pending)). Its ids are
    those of versions seen at exactly that second, merged with the previous ids when the
    watermark did not move (ties seen by earlier runs stay covered)."""
    if not completed:
        return None
    started = zoho_second(zoho_started_at.replace(microsecond=0), "zoho_started_at")
    candidate = started - policy.settle
    for version in pending:
        candidate = min(candidate, version.modified_at)
    for moment in held:
        candidate = min(candidate, zoho_second(moment, "held"))
    if previous.watermark is not None and candidate <= previous.watermark:
        watermark = previous.watermark
        kept = previous.ids_at_watermark
    else:
        watermark, kept = candidate, frozenset()
    at_mark = {v.record_id for v in seen if v.modified_at == watermark}
    return Cursor(watermark, kept | at_mark)
