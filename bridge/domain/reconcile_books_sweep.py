"""Books deletions by full id sweep (opt-in per entity; reconciliation.md e.9).

Books has no deleted-records API (B7), so a deletion no webhook announced is found only by
listing every id and diffing with the ids known before. A diff of an incomplete listing
"causes false deletions" (Nango's `trackDeletesEnd` warning, a.2 #6), and page-number
listings can drop a row when another is deleted mid-walk (B6, `walk_done`), so:

- only a *complete* sweep changes anything; an incomplete one leaves every count as it was
  (a later complete sweep still counts as consecutive to the one before it);
- an id is judged deleted only once absent from two consecutive complete sweeps;
- a sweep in which too many known ids are absent at once is held as suspect and changes
  nothing: a wrong organization, lost permission or a changed default filter looks like a
  mass deletion (the same reason CRM never infers a delete from a missing lead, C8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SweepPolicy:
    misses_to_delete: int = 2
    suspect_fraction: float = 0.5
    suspect_min_known: int = 10

    def __post_init__(self) -> None:
        if self.misses_to_delete < 1:
            raise ValueError("misses_to_delete must be at least 1")
        if not 0 < self.suspect_fraction <= 1:
            raise ValueError("suspect_fraction must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class SweepResult:
    """`misses`: consecutive complete sweeps that missed each known id (ids seen again are
    dropped); `deleted`: ids judged deleted now; `known`: the ids known after the sweep
    (deleted ones removed, new ones added); `held`: why nothing changed, if so."""

    misses: dict[str, int] = field(default_factory=dict)
    deleted: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()
    held: str | None = None


def sweep(
    known: Iterable[str],
    listed: Iterable[str],
    misses: Mapping[str, int],
    *,
    complete: bool,
    policy: SweepPolicy | None = None,
) -> SweepResult:
    """Diff one sweep. `known`: ids known before; `listed`: every id this sweep returned;
    `misses`: the counts kept from earlier sweeps; `complete`: every page was read."""
    rules = policy or SweepPolicy()
    before = frozenset(known)
    kept = {i: n for i, n in misses.items() if i in before}
    if not complete:
        return SweepResult(kept, frozenset(), before, "the sweep was incomplete")
    seen = frozenset(listed)
    absent = before - seen
    if len(before) >= rules.suspect_min_known and len(absent) > rules.suspect_fraction * len(
        before
    ):
        return SweepResult(
            kept, frozenset(), before, f"{len(absent)} of {len(before)} known ids were absent"
        )
    counts = {i: kept.get(i, 0) + 1 for i in absent}
    deleted = frozenset(i for i, n in counts.items() if n >= rules.misses_to_delete)
    waiting = {i: n for i, n in counts.items() if i not in deleted}
    return SweepResult(waiting, deleted, (before - deleted) | seen)
