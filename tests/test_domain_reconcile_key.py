"""The version dedup key: stable, unambiguous, bounded, shared with Books webhooks."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.domain.books_payload import parse_books_time
from bridge.domain.events import Product
from bridge.domain.reconcile_key import HASHED_PREFIX, KEY_LIMIT, version_key

T = datetime(2025, 4, 9, 15, 25, 54, tzinfo=UTC)


def test_the_key_is_stable_and_readable() -> None:
    key = version_key("acme", Product.CRM, "Leads", "5725767000003000010", T)
    assert key == "v1:4:acme3:crm5:leads19:5725767000003000010" + f"10:{int(T.timestamp())}m"
    assert key == version_key("acme", Product.CRM, "Leads", "5725767000003000010", T)


def test_parts_cannot_run_into_each_other() -> None:
    """Catches `":".join(parts)`: ("a:b", "c") and ("a", "b:c") would be one key, and one
    record's reconciled event would silence another's."""
    assert version_key("a:b", Product.CRM, "c", "1", T) != version_key(
        "a", Product.CRM, "b:c", "1", T
    )
    assert version_key("acme", Product.CRM, "Leads", "12", T) != version_key(
        "acme", Product.CRM, "Leads1", "2", T
    )


def test_no_two_different_tuples_share_a_key() -> None:
    """Random tuples built from separator-like characters: distinct tuples, distinct keys."""
    rng = random.Random(7)
    alphabet = ["a", ":", "1", "0", "v", "d", "m", "é", "12:"]
    seen: dict[str, tuple[str, str, str, int, bool]] = {}
    for _ in range(3000):
        conn, module, rid = ("".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(3))
        seconds, deleted = rng.randint(0, 3), rng.random() < 0.5
        parts = (conn, module.casefold(), rid, seconds, deleted)
        key = version_key(
            conn, Product.BOOKS, module, rid, T + timedelta(seconds=seconds), deleted=deleted
        )
        assert seen.setdefault(key, parts) == parts


def test_one_instant_with_two_offsets_is_one_key() -> None:
    """A Books webhook's `last_modified_time` (`-0400`, B5) and the listing's UTC value of the
    same instant give the same key, so a late webhook is a duplicate of the reconciled event."""
    from_webhook = parse_books_time("2025-04-09T11:25:54-0400")
    assert from_webhook is not None
    assert version_key("acme", Product.BOOKS, "invoice", "9", from_webhook) == version_key(
        "acme", Product.BOOKS, "invoice", "9", T
    )
    other = T.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert version_key("acme", Product.BOOKS, "invoice", "9", other) == version_key(
        "acme", Product.BOOKS, "invoice", "9", T
    )


def test_modules_compare_case_insensitively_everything_else_exactly() -> None:
    base = version_key("acme", Product.CRM, "Leads", "1", T)
    assert version_key("acme", Product.CRM, "leads", "1", T) == base
    assert version_key("Acme", Product.CRM, "Leads", "1", T) != base
    assert version_key("acme", Product.BOOKS, "Leads", "1", T) != base
    assert version_key("acme", Product.CRM, "Leads", "1", T + timedelta(seconds=1)) != base


def test_a_deletion_is_not_the_last_update() -> None:
    """Catches a key without the kind: a Books delete webhook carries the entity's last
    `last_modified_time`, the same second as its last update, and would be a duplicate."""
    update = version_key("acme", Product.BOOKS, "invoice", "9", T)
    assert version_key("acme", Product.BOOKS, "invoice", "9", T, deleted=True) != update


def test_long_keys_are_hashed_and_stay_unambiguous() -> None:
    long_id = "9" * 500
    key = version_key("acme", Product.CRM, "Leads", long_id, T)
    assert key.startswith(HASHED_PREFIX)
    assert len(key) <= KEY_LIMIT
    assert key != version_key("acme", Product.CRM, "Leads", long_id + "9", T)
    lengths = [len(version_key("c" * n, Product.CRM, "m" * n, "r" * n, T)) for n in (10, 100, 200)]
    assert all(n <= KEY_LIMIT for n in lengths)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "Leads", "1", T), "must not be empty"),
        (("acme", "", "1", T), "must not be empty"),
        (("acme", "Leads", "", T), "must not be empty"),
        (("acme", "Leads", "1", T.replace(microsecond=5)), "whole seconds"),
        (("acme", "Leads", "1", T.replace(tzinfo=None)), "timezone-aware"),
    ],
)
def test_bad_parts_are_refused(args: tuple[str, str, str, datetime], message: str) -> None:
    """Catches silently truncating a sub-second time: two different instants would share a
    key (and CRM webhook times, in milliseconds, must never be passed here)."""
    conn, module, rid, when = args
    with pytest.raises(ValueError, match=message):
        version_key(conn, Product.CRM, module, rid, when)


def test_keys_are_distinct_across_products_modules_and_kinds() -> None:
    keys = {
        version_key("acme", product, module, "1", T, deleted=deleted)
        for product, module, deleted in itertools.product(
            Product, ("Leads", "invoice"), (False, True)
        )
    }
    assert len(keys) == 8
