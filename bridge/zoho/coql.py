"""COQL keyset queries for large catch-ups: pure query building, no I/O.

Paging forward from the last (Modified_Time, id) seen instead of by OFFSET: an OFFSET walk
skips a row whenever an earlier one is edited mid-walk, and stops at 100,000 rows; a
keyset walk does neither, and `order by Modified_Time, id` makes ties at one second
deterministic (reconciliation.md C9, e #4). 2,000 ids cost 3 credits this way, against 10
through the list API (reconciliation.md d). Whether COQL accepts `>` on `id` and how fresh
its results are is UNCERTAIN (reconciliation.md C10): verify against a live tenant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.zoho.times import iso_seconds, parse_zoho_time

# At most 2,000 rows per COQL call (zoho.md §4.2).
MAX_COQL_LIMIT = 2000
VERSION_FIELDS: tuple[str, ...] = ("id", "Modified_Time", "Created_Time")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ID = re.compile(r"^[0-9]{1,30}$")


@dataclass(frozen=True, slots=True)
class CoqlKey:
    """A position in `order by Modified_Time asc, id asc`: the last row read."""

    modified: datetime
    id: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> CoqlKey | None:
        """The key of a COQL row, or None if it lacks a parseable time or a numeric id."""
        modified = parse_zoho_time(row.get("Modified_Time"))
        record_id = str(row.get("id", ""))
        if modified is None or not _ID.match(record_id):
            return None
        return cls(modified, record_id)


def keyset_query(
    module: str,
    *,
    since: datetime | None = None,
    after: CoqlKey | None = None,
    until: datetime | None = None,
    fields: Sequence[str] = VERSION_FIELDS,
    limit: int = MAX_COQL_LIMIT,
) -> str:
    """`select … from {module} where … order by Modified_Time asc, id asc limit N`.

    The first page takes `Modified_Time >= since`; each next page starts strictly after
    the last key read: `(Modified_Time > T) or (Modified_Time = T and id > X)`. `until`
    adds `Modified_Time <= until`, so a catch-up ends at a bound it chose up front. Names
    and ids are checked, since they go into the query text.
    """
    if not _NAME.match(module):
        raise ValueError(f"not a module API name: {module!r}")
    bad = [f for f in fields if not _NAME.match(f)]
    if bad or not fields:
        raise ValueError(f"not field API names: {bad or 'none given'}")
    if not 1 <= limit <= MAX_COQL_LIMIT:
        raise ValueError(f"COQL LIMIT must be 1..{MAX_COQL_LIMIT}, got {limit}")
    if after is not None:
        if not _ID.match(after.id):
            raise ValueError(f"not a record id: {after.id!r}")
        at = _literal(after.modified)
        lower = f"(Modified_Time > {at}) or (Modified_Time = {at} and id > {after.id})"
    elif since is not None:
        lower = f"Modified_Time >= {_literal(since)}"
    else:
        # A catch-up always has a lower bound; an unbounded scan is not what this is for.
        raise ValueError("a keyset query needs `since` (first page) or `after` (next pages)")
    where = lower
    if until is not None:
        where = f"({lower}) and Modified_Time <= {_literal(until)}"
    return (
        f"select {', '.join(fields)} from {module} where {where} "
        f"order by Modified_Time asc, id asc limit {limit}"
    )


def _literal(when: datetime) -> str:
    # COQL compares datetimes with quoted ISO-8601 values with an offset (zoho.md §4.2).
    return f"'{iso_seconds(when)}'"
