"""How to list one Books entity: chosen from a probe at setup, made safer when a run shows
the choice was wrong, and rows deduped within a run (reconciliation.md e.10).

Strategies, safest last: `filter` (`last_modified_time=<bound>`, every page read), `sorted`
(`sort_column=last_modified_time&sort_order=D`, walked newest first down to the bound,
B4), `scan` (every row, at low frequency). Which entity honours what is disputed (B1-B3),
and guessing wrong either loses edits silently or burns quota, so:

- A probe lists with `last_modified_time = T - 1 day`. Rows older than the bound mean the
  parameter is ignored or filters another field (Airbyte's expenses filter on the document
  date); only rows exactly at the bound while later known modifications stay away mean
  "equal" (hotglue's journals, B2); every known later modification coming back means "at
  or after". `filter` is used only for "at or after".
- The filter is sent one second *below* the run's lower bound (`filter_parameter`): a probe
  can rarely tell `≥` from `>`, and one second lower is right under both. Never `+1 s`.
- `sorted` is used when the probe's sorted page really is newest first (two distinct times
  at least); otherwise `scan`.
- During a run, rows older than the sent bound under `filter`, rows out of order under
  `sorted`, or a webhook-announced version the poll should have returned but did not, move
  the entity to the next safer strategy, with a reason an operator can read.
- Books may return one record twice in a listing (B6): keep the newest modified time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise

from bridge.domain.reconcile_cursor import Version


class ListingStrategy(StrEnum):
    FILTER = "filter"
    SORTED = "sorted"
    SCAN = "scan"


class FilterSemantics(StrEnum):
    AT_OR_AFTER = "at_or_after"
    EQUAL = "equal"
    IGNORED = "ignored"
    REFUSED = "refused"
    UNKNOWN = "unknown"


_SAFER = {
    ListingStrategy.FILTER: ListingStrategy.SORTED,
    ListingStrategy.SORTED: ListingStrategy.SCAN,
}


@dataclass(frozen=True, slots=True)
class FilterProbe:
    """`known`: versions from an unfiltered listing (what exists); `returned`: the rows of
    the listing filtered with `last_modified_time = bound`, None if Zoho refused it."""

    bound: datetime
    known: tuple[Version, ...]
    returned: tuple[Version, ...] | None


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    strategy: ListingStrategy
    filter: FilterSemantics
    reason: str


@dataclass(frozen=True, slots=True)
class StrategyChange:
    previous: ListingStrategy
    next: ListingStrategy
    reason: str


def filter_semantics(probe: FilterProbe) -> FilterSemantics:
    """What the `last_modified_time` parameter does, from one probe."""
    if probe.returned is None:
        return FilterSemantics.REFUSED
    if any(v.modified_at < probe.bound for v in probe.returned):
        return FilterSemantics.IGNORED
    later = {v.record_id for v in probe.known if v.modified_at > probe.bound}
    if not later:
        return FilterSemantics.UNKNOWN
    returned = {v.record_id for v in probe.returned}
    if later <= returned:
        return FilterSemantics.AT_OR_AFTER
    if probe.returned and all(v.modified_at == probe.bound for v in probe.returned):
        return FilterSemantics.EQUAL
    return FilterSemantics.UNKNOWN


def sorted_newest_first(rows: Sequence[Version]) -> bool:
    """Whether `rows` are in non-increasing modified time (ties and duplicates allowed)."""
    return all(a.modified_at >= b.modified_at for a, b in pairwise(rows))


def choose_strategy(probe: FilterProbe, sorted_rows: Sequence[Version] | None) -> StrategyChoice:
    """The best safe strategy. `sorted_rows`: the first page listed with
    `sort_column=last_modified_time&sort_order=D`, None if Zoho refused the parameter."""
    semantics = filter_semantics(probe)
    if semantics is FilterSemantics.AT_OR_AFTER:
        return StrategyChoice(
            ListingStrategy.FILTER, semantics, "last_modified_time returns later modifications"
        )
    why = {
        FilterSemantics.EQUAL: "last_modified_time matches the exact time only",
        FilterSemantics.IGNORED: "last_modified_time returned rows older than the bound",
        FilterSemantics.REFUSED: "last_modified_time was refused",
        FilterSemantics.UNKNOWN: "the probe could not show last_modified_time returns later rows",
    }[semantics]
    if sorted_rows is None:
        return StrategyChoice(ListingStrategy.SCAN, semantics, f"{why}; sorting was refused")
    distinct = {v.modified_at for v in sorted_rows}
    if len(distinct) >= 2 and sorted_newest_first(sorted_rows):
        return StrategyChoice(ListingStrategy.SORTED, semantics, f"{why}; sorting works")
    return StrategyChoice(
        ListingStrategy.SCAN, semantics, f"{why}; sorting by last_modified_time is not verified"
    )


def filter_parameter(since: datetime) -> datetime:
    """The `last_modified_time` to send for a run reading from `since`."""
    return since - timedelta(seconds=1)


def review_run(
    strategy: ListingStrategy,
    since: datetime,
    rows: Sequence[Version],
    expected: Iterable[Version] = (),
) -> StrategyChange | None:
    """A safer strategy if this run's rows (as received, before dedup) show the current one
    misbehaves, else None. `expected`: the versions webhooks announced, modified in
    `[since, run start - settle]`, of records neither known deleted nor changed again since
    the run started (an edit mid-walk moves a record to pages already read) — each must come
    back, as itself or as a newer version of its record. A full scan has nothing safer: a
    row missing from it is a deletion or late visibility, not a strategy fault."""
    if strategy is ListingStrategy.SCAN:
        return None
    safer = _SAFER[strategy]
    if strategy is ListingStrategy.FILTER:
        bound = filter_parameter(since)
        old = [v for v in rows if v.modified_at < bound]
        if old:
            return StrategyChange(
                strategy, safer, f"filter returned rows older than the bound ({len(old)})"
            )
    elif not sorted_newest_first(rows):
        return StrategyChange(strategy, safer, "sorted listing returned rows out of order")
    lost = unlisted(rows, expected)
    if lost:
        ids = ", ".join(sorted({e.record_id for e in lost})[:5])
        return StrategyChange(
            strategy, safer, f"{len(lost)} announced versions were not listed (e.g. {ids})"
        )
    return None


def unlisted(rows: Iterable[Version], expected: Iterable[Version]) -> list[Version]:
    """The `expected` versions that `rows` returned neither as themselves nor as a newer
    version of their record."""
    newest: dict[str, datetime] = {}
    for v in rows:
        newest[v.record_id] = max(v.modified_at, newest.get(v.record_id, v.modified_at))
    return [e for e in expected if e.record_id not in newest or newest[e.record_id] < e.modified_at]


def dedupe_rows(rows: Iterable[Version]) -> list[Version]:
    """One row per record, the newest modified time, in first-seen order (B6)."""
    kept: dict[str, Version] = {}
    for v in rows:
        if v.record_id not in kept or v.modified_at > kept[v.record_id].modified_at:
            kept[v.record_id] = v
    return list(kept.values())
