"""Read paths that stay fast as events pile up: the admin filters' plans use an index, and
the envelopes the database writes for the pull API are the ones `build_envelope` gives."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.envelope import build_envelope, envelope_head, message_for
from bridge.domain.events import Event, EventFilter, Operation, Origin, Product
from bridge.store import events_stats, outbox, outbox_queries
from bridge.store.database import create_engine
from bridge.store.event_queries import events_query, get_event, list_events
from bridge.store.events_envelopes import envelope_page, message_columns, messages
from bridge.store.models import DeliveryRow, EventRow
from tests.conftest import _truncate

T0 = datetime(2026, 12, 6, 10, 0, 0, 123_987, tzinfo=UTC)
MODULES = ("Leads", "Deals", "invoice", "Contacts")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url)
    yield made
    await made.dispose()


def _row(i: int, **changes: Any) -> dict[str, Any]:
    module = MODULES[i % len(MODULES)]
    row: dict[str, Any] = {
        "id": f"01TEST{i:020d}",
        "product": "books" if module == "invoice" else "crm",
        "source": "books-a" if module == "invoice" else "crm",
        "module": module,
        "operation": ("created", "updated", "deleted", "changed")[i % 4],
        "record_id": f"rec{i % 997}",
        "occurred_at": T0 + timedelta(seconds=i, microseconds=i * 37),
        "received_at": T0 + timedelta(seconds=i + 1),
        "origin": "webhook",
        "dedup_key": f"test/{i}",
        "data": {"id": f"rec{i % 997}", "n": i},
        "request_id": f"01REQ{i // 2:021d}",
    }
    row.update(changes)
    return row


async def _store(engine: AsyncEngine, rows: list[dict[str, Any]], *, heads: bool = False) -> None:
    """Insert `rows`; with `heads`, each with its envelope head as the writer stores it
    (migration 0011), else without (events stored before it)."""
    if heads:
        rows = [{**row, "envelope_head": envelope_head(_event(row))} for row in rows]
    async with engine.begin() as conn:
        await conn.execute(insert(EventRow), rows)


def _event(row: dict[str, Any]) -> Event:
    fields = {k: v for k, v in row.items() if k in Event.__dataclass_fields__}
    return Event(
        **{
            **fields,
            "product": Product(row["product"]),
            "operation": Operation(row["operation"]),
            "origin": Origin(row["origin"]),
        }
    )


async def _explain(engine: AsyncEngine, statement: Any, *, no_seqscan: bool = False) -> str:
    """The database's plan for `statement` (not run), as one string; `no_seqscan` rules out
    PostgreSQL's sequential scans when a table is small enough to scan and the index
    chosen is the question."""
    dialect = engine.dialect.name
    compiled = statement.compile(
        dialect=sqlite.dialect() if dialect == "sqlite" else postgresql.dialect(),
        compile_kwargs={"literal_binds": True},
    )
    explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    async with engine.connect() as conn:
        if no_seqscan and dialect != "sqlite":
            await conn.execute(text("SET enable_seqscan = off"))
        rows = (await conn.execute(text(explain + str(compiled)))).all()
    return "\n".join(str(row[-1]) for row in rows)


async def _plan(engine: AsyncEngine, where: EventFilter) -> str:
    """The database's plan for the admin events query with this filter, as one string."""
    return await _explain(engine, events_query(where, engine.dialect.name))


async def test_a_record_id_alone_is_looked_up_through_its_index(engine: AsyncEngine) -> None:
    await _store(engine, [_row(i) for i in range(3000)])
    where = EventFilter(record_id="rec42")
    for analysed in (False, True):
        if analysed:  # the plan must not need statistics, and must survive them
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        plan = await _plan(engine, where)
        assert "ix_events_record_id_seq" in plan, plan
        assert "SCAN events\n" not in plan + "\n" and "Seq Scan" not in plan, plan
    found = await list_events(engine, where, limit=100)
    assert [e.seq for e in found] == sorted((e.seq for e in found), reverse=True)
    assert [e.dedup_key for e in found] == ["test/2036", "test/1039", "test/42"]


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (EventFilter(module="Deals"), "ix_events_module_seq"),
        (EventFilter(source="books-a"), "ix_events_source_seq"),
        (EventFilter(origin="reconciliation"), "ix_events_origin_seq"),
        (EventFilter(origin="replay", product="crm"), "ix_events_origin_seq"),
        (EventFilter(request_id="01REQ000000000000000000007"), "ix_events_request_id"),
    ],
)
async def test_each_filter_alone_has_an_index_on_sqlite(
    sqlite_template: Path, tmp_path: Path, where: EventFilter, index: str
) -> None:
    """Without statistics (the bridge never runs ANALYZE on SQLite) each filter is still
    answered through its own index, in seq order, with no sort. (PostgreSQL plans by its
    statistics; the record_id test above runs on both.)"""
    shutil.copy(sqlite_template, tmp_path / "bridge.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}")
    await _store(engine, [_row(i) for i in range(200)])
    plan = await _plan(engine, where)
    await engine.dispose()
    assert index in plan and "TEMP B-TREE" not in plan, plan


async def test_combined_filters_are_driven_by_one_index_and_still_all_apply(
    engine: AsyncEngine,
) -> None:
    await _store(engine, [_row(i) for i in range(400)])
    where = EventFilter(module="Leads", operation="created", source="crm")
    found = await list_events(engine, where, limit=1000)
    expected = [i for i in range(400) if i % 4 == 0]  # Leads are created, here
    assert len(found) == len(expected) == 100
    assert all((e.module, e.operation, e.source) == ("Leads", "created", "crm") for e in found)
    if engine.dialect.name == "sqlite":
        assert "ix_events_module_seq" in await _plan(engine, where)


def _odd_rows() -> list[dict[str, Any]]:
    """Rows with every shape an envelope has: reconciled ones, strings to escape, a
    non-ASCII Books entity (left to Python), a time whose milliseconds are cut."""
    rows = [_row(i) for i in range(12)]
    rows[3].update(origin="reconciliation", miss_cause="missed", collapsed=True, request_id=None)
    rows[4].update(origin="reconciliation", miss_cause=None, collapsed=None, request_id=None)
    rows[5].update(origin="replay")
    rows[6].update(module="Zählung", product="books", source="books-a")  # non-ASCII module
    rows[7].update(data={"name": "Zoë \"quoted\" \\ \n tab\t", "emoji": "🙂", "f": 1.5,
                         "big": 2**62, "nested": {"list": [1, None, True]}, "empty": {}})  # fmt: skip
    rows[8].update(module="CustomModule_7", operation="changed")
    rows[9].update(occurred_at=T0.replace(microsecond=999_999))  # milliseconds cut, not rounded
    rows[10].update(data=[1, 2, 3])
    rows[11].update(record_id="rec/with/slash", source="crm-eu")
    rows[2].update(record_id='quote " and \\ back', module="invoice", product="books")
    rows[1].update(origin="reconciliation", miss_cause="channel_gap", collapsed=False,
                   request_id=None, record_id="ctl\x01\x1f\u2028 end\t")  # fmt: skip
    return rows


@pytest.mark.parametrize("heads", [True, False], ids=["stored-head", "before-0011"])
async def test_pull_envelopes_are_the_documents_build_envelope_gives(
    engine: AsyncEngine, heads: bool
) -> None:
    await _store(engine, _odd_rows(), heads=heads)
    texts, last = await envelope_page(engine, EventFilter(), after_seq=0, limit=100)
    assert len(texts) == 12
    for envelope in texts:
        document = json.loads(envelope)
        stored = await get_event(engine, str(document["bridgeseq"]))
        assert stored is not None
        assert document == json.loads(json.dumps(build_envelope(stored)))
        assert list(document) == list(build_envelope(stored))  # same key order
    assert last == json.loads(texts[-1])["bridgeseq"]


@pytest.mark.parametrize("heads", [True, False], ids=["stored-head", "before-0011"])
async def test_relay_messages_carry_the_pull_envelopes(engine: AsyncEngine, heads: bool) -> None:
    await _store(engine, _odd_rows(), heads=heads)
    page, _ = await envelope_page(engine, EventFilter(), after_seq=0, limit=100)
    query = select(*message_columns(engine.dialect.name)).order_by(EventRow.seq)
    async with engine.connect() as conn:
        found = await messages(conn, (await conn.execute(query)).all())
    assert [m.body for m in found] == page  # the same bytes as the pull API
    for message in found:
        stored = await get_event(engine, str(message.seq))
        assert stored is not None
        expected = message_for(stored)
        assert json.loads(message.body) == json.loads(expected.body)
        assert replace(message, body=b"") == replace(expected, body=b"")


async def test_pull_pages_follow_the_filter_and_the_cursor(engine: AsyncEngine) -> None:
    await _store(engine, [_row(i) for i in range(50)])
    where = EventFilter(source="crm", module="Deals", operation="updated")
    texts, last = await envelope_page(engine, where, after_seq=0, limit=5)
    docs = [json.loads(t) for t in texts]
    assert [d["zohorecordid"] for d in docs] == [f"rec{i}" for i in range(1, 50, 4)][:5]
    assert {(d["zohomodule"], d["zohooperation"]) for d in docs} == {("Deals", "updated")}
    rest, end = await envelope_page(engine, where, after_seq=last or 0, limit=100)
    assert len(rest) == 13 - 5 and end == json.loads(rest[-1])["bridgeseq"]
    assert await envelope_page(engine, where, after_seq=end or 0, limit=5) == ([], None)


async def test_status_counts_of_a_sink_read_only_undelivered_rows(engine: AsyncEngine) -> None:
    """The per-sink counts of the status overview are answered by the partial index of
    undelivered rows, so delivered history costs them nothing."""
    await _store(engine, [_row(i) for i in range(20)])
    async with engine.begin() as conn:
        seqs = (await conn.execute(select(EventRow.seq))).scalars().all()
        await conn.execute(
            insert(DeliveryRow),
            [
                {"event_seq": s, "sink": "redis", "record_key": "k", "next_attempt_at": T0,
                 "created_at": T0, "status": "delivered" if s % 5 else "pending"}
                for s in seqs
            ],
        )  # fmt: skip
    query = (
        "SELECT sink, status, replay, count(*), min(created_at) FROM deliveries "
        "WHERE lower(status) != 'delivered' GROUP BY sink, status, replay"
    )
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            await conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(str(r[-1]) for r in (await conn.execute(text(explain + query))).all())
    assert "ix_deliveries_sink_status_replay_created_at" in plan, plan
    counts = await outbox_queries.sink_counts(engine)
    assert (counts["redis"].pending, counts["redis"].dead) == (4, 0)


@pytest.mark.postgres
async def test_status_counts_use_their_index_with_statistics_of_a_delivered_history(
    postgres_url: str,
) -> None:
    """PostgreSQL, as autovacuum leaves it: statistics of an outbox that is nearly all
    delivered, no planner setting. The condition is an expression (`lower(status)`,
    migration 0010) that had no statistics of its own: the planner took it to hold for
    nearly every row and scanned the whole outbox (116 ms at 1M rows, against 0.7 ms
    through the index). Migration 0012 gives the expression statistics."""
    await _truncate(postgres_url)
    engine = create_engine(postgres_url)
    try:
        await _store(engine, [_row(0)])
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO deliveries (event_seq, sink, record_key, status, attempts,"
                    " next_attempt_at, created_at, replay) SELECT (SELECT min(seq) FROM"
                    " events), 'redis', 'k' || g, CASE WHEN g % 1000 = 0 THEN 'pending'"
                    " ELSE 'delivered' END, 0, now(), now(), false"
                    " FROM generate_series(1, 30000) AS g"
                )
            )
            await conn.execute(text("ANALYZE deliveries"))
        plan = await _explain(engine, outbox_queries.sink_counts_query())
        assert "ix_deliveries_sink_status_replay_created_at" in plan, plan
        counts = await outbox_queries.sink_counts(engine)
        assert (counts["redis"].pending, counts["redis"].dead) == (30, 0)
    finally:
        await _truncate(postgres_url)
        async with engine.begin() as conn:  # no statistics of these rows for other tests
            await conn.execute(text("ANALYZE deliveries"))
        await engine.dispose()


async def test_event_stats_are_exact_while_few_and_the_seq_span_beyond(
    engine: AsyncEngine,
) -> None:
    assert await events_stats.event_stats(engine) == (0, None, None)
    await _store(engine, [_row(i) for i in range(30)])
    async with engine.begin() as conn:  # holes, as retention leaves them
        await conn.execute(delete(EventRow).where(EventRow.dedup_key.in_(["test/3", "test/9"])))
    assert await events_stats.event_stats(engine) == await outbox_queries.event_stats(engine)
    assert (await events_stats.event_stats(engine))[0] == 28
    more = events_stats.EXACT_UP_TO
    await _store(engine, [_row(i) for i in range(30, 30 + more)])
    count, last_at, last_seq = await events_stats.event_stats(engine)
    exact = await outbox_queries.event_stats(engine)
    assert (last_at, last_seq) == exact[1:]
    assert count == exact[0] + 2 == more + 30  # the two holes are within the seq span


async def test_marking_a_batch_delivered_finds_its_rows_by_primary_key(
    engine: AsyncEngine,
) -> None:
    """Statistics taken while the outbox was empty (a relay's first start) must not turn
    the settlement of 100 rows into a scan of every pending row."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE deliveries"))
    await _store(engine, [_row(i) for i in range(3000)])
    async with engine.begin() as conn:
        seqs = (await conn.execute(select(EventRow.seq))).scalars().all()
        await conn.execute(
            insert(DeliveryRow),
            [{"event_seq": s, "sink": "redis", "record_key": f"k{s}", "next_attempt_at": T0,
              "created_at": T0} for s in seqs],
        )  # fmt: skip
        ids = (await conn.execute(select(DeliveryRow.id).limit(100).offset(1000))).scalars()
        statement = outbox.delivered_update(list(ids), T0)
    plan = await _explain(engine, statement, no_seqscan=True)  # 3,000 rows: few enough to scan
    if engine.dialect.name == "sqlite":
        assert "USING INTEGER PRIMARY KEY" in plan, plan
    else:
        # By primary key (an index or a bitmap scan), `status` checked on those rows only.
        conditions = [line for line in plan.splitlines() if "Index Cond:" in line]
        assert "pk_deliveries" in plan and conditions, plan
        assert not any("status" in line for line in conditions), plan


@pytest.mark.parametrize("history", ["empty", "all delivered"])
async def test_the_claims_lane_probe_uses_the_lane_index_whatever_the_statistics(
    engine: AsyncEngine, history: str
) -> None:
    """With statistics taken while the outbox had no pending row (a new database, or the
    steady state of a relay that keeps up: all history delivered), PostgreSQL probed each
    candidate's lane through another index, filtering every pending row: a claim of 100
    among 40k pending rows took 0.6 s; of 500 among 20k, 0.9-1.7 s. The probe must go
    through the lane index, and a claim still takes one row per record, oldest first."""
    if history == "all delivered":
        await _store(engine, [_row(i) for i in range(3000, 6000)])
        async with engine.begin() as conn:
            old = (await conn.execute(select(EventRow.seq))).scalars().all()
            await conn.execute(
                insert(DeliveryRow),
                [{"event_seq": s, "sink": "redis", "record_key": f"k{s % 1000}",
                  "next_attempt_at": T0, "created_at": T0, "status": "delivered"}
                 for s in old],
            )  # fmt: skip
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE deliveries"))
    await _store(engine, [_row(i) for i in range(3000)])
    async with engine.begin() as conn:
        seqs = (
            await conn.execute(select(EventRow.seq).where(EventRow.dedup_key.in_(
                [f"test/{i}" for i in range(3000)])).order_by(EventRow.seq))
        ).scalars().all()  # fmt: skip
        await conn.execute(
            insert(DeliveryRow),
            [{"event_seq": s, "sink": "redis", "record_key": f"k{s % 1000}",
              "next_attempt_at": T0, "created_at": T0} for s in seqs],
        )  # fmt: skip
    query = outbox.claim_statement("redis", "me", now=T0, lease=timedelta(seconds=9), limit=100)
    plan = await _explain(engine, query)
    assert "ix_deliveries_lane" in plan, plan
    assert "ix_deliveries_sink_status_replay_created_at" not in plan, plan
    claimed = await outbox.claim(engine, "redis", "me", now=T0, lease=timedelta(seconds=9),
                                 limit=100)  # fmt: skip
    assert [c.message.seq for c in claimed] == list(seqs[:100])
