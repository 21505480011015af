"""The store sink's retries: while writes fail, nothing is acknowledged; once one succeeds the
batch is in the store and acknowledged once. Failures are injected into the real upsert of a
real SQLite store."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import select

from moodwire.metrics import StageMetrics
from moodwire.records import ScoredNews
from moodwire.store import StoreError, open_store, scored_news
from streams.aggregate.store_sink import sink_handler, upsert_items
from tests.streams.aggregate_support import make

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


class Acks:  # the worker's Source as far as the sink uses it (the real one: tests/streams/test_aggregate_worker.py)
    def __init__(self) -> None:
        self.batches: list[list] = []

    def ack(self, messages) -> None:
        self.batches.append(list(messages))


@settings(max_examples=12, deadline=None)
@given(failures=st.integers(0, 4), n=st.integers(1, 20))
def test_a_batch_is_acknowledged_once_and_only_after_the_store_took_it(tmp_path_factory, failures, n):
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}")
    rng = random.Random(n)
    items = [make("Macro", NOW, rng, f"i{i}") for i in range(n)]
    messages = [SimpleNamespace(value=item.encode()) for item in items] + [SimpleNamespace(value=b"not json")]
    acks, metrics = Acks(), StageMetrics("sinktest")
    calls = []

    def flaky(engine, rows: list[ScoredNews]) -> int:
        calls.append(len(rows))
        if len(calls) <= failures:
            assert acks.batches == []  # nothing acknowledged while the store is away
            raise StoreError("cannot write to the store: injected failure")
        return upsert_items(engine, rows)

    sink = sink_handler(acks, engine, ScoredNews, flaky, metrics, first_retry_s=0.001)
    asyncio.run(sink(messages))
    assert calls == [n] * (failures + 1)
    assert acks.batches == [messages]
    assert metrics.errors.labels("store")._value.get() == failures
    with engine.connect() as conn:
        assert sorted(conn.scalars(select(scored_news.c.id))) == sorted(i.id for i in items)


def test_each_failed_write_is_one_log_line_naming_the_wait(tmp_path, caplog):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    failures = iter([True, True, False])

    def flaky(engine, rows):
        if next(failures):
            raise StoreError("cannot write to the store at sqlite:///x: disk I/O error")
        return upsert_items(engine, rows)

    sink = sink_handler(Acks(), engine, ScoredNews, flaky, StageMetrics("sinklog"),
                        first_retry_s=0.001)
    with caplog.at_level(logging.ERROR, logger="moodwire.aggregate"):
        asyncio.run(sink([]))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all(line.startswith("cannot write to the store at sqlite:///x: disk I/O error "
                                                   "(retrying in 0 s)") for line in lines)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = open_store(url)
    with engine.begin() as conn:
        conn.execute(scored_news.delete())
    return engine


def test_a_headline_with_nul_and_lone_surrogates_is_cleaned_and_stored(store):
    """PostgreSQL refuses NUL in text and cannot encode a lone surrogate: such an item is cleaned
    where it is decoded (moodwire.records.clean_text) and reaches both stores."""
    item = make("Macro", NOW, random.Random(1), "nul")
    payload = item.encode().replace(b'"title":"', b'"title":"\\u0000Bank \\ud800run\\u0007 ')
    acks = Acks()
    asyncio.run(sink_handler(acks, store, ScoredNews, upsert_items, StageMetrics("sinktest"))(
        [SimpleNamespace(value=payload)]))
    assert acks.batches == [[SimpleNamespace(value=payload)]]
    with store.connect() as conn:
        assert conn.scalar(select(scored_news.c.title)) == f"Bank \ufffdrun {item.title}"


def test_a_row_the_store_refuses_is_dead_lettered_and_the_rest_stored_at_once(store):
    """A row the database itself refuses (a NOT NULL title, forced into the real upsert) fails
    alone: it is dead-lettered with the store's words, every other row is stored, the batch is
    acknowledged once, and nothing waits for a retry."""
    rng = random.Random(2)
    items = [make("Macro", NOW, rng, f"r{i}") for i in range(6)]
    bad = items[3].id
    messages = [SimpleNamespace(value=item.encode(), topic="news.scored", partition=0, offset=i)
                for i, item in enumerate(items)]

    def refusing(engine, rows):
        return upsert_items(engine, [row.model_construct(**{**dict(row), "title": None}) if row.id == bad else row
                                     for row in rows])

    letters, acks, metrics = [], Acks(), StageMetrics("sinktest")

    async def send_dead(found):
        letters.extend(found)

    asyncio.run(asyncio.wait_for(sink_handler(acks, store, ScoredNews, refusing, metrics, send_dead,
                                              first_retry_s=30)(messages), timeout=20))
    assert acks.batches == [messages]
    assert [(d.reason, d.offset) for d in letters] == [("refused", 3)] and "refused" in letters[0].error
    assert metrics.errors.labels("refused")._value.get() == 1
    with store.connect() as conn:
        assert sorted(conn.scalars(select(scored_news.c.id))) == sorted(i.id for i in items if i.id != bad)
