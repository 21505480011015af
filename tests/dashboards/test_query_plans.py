"""The dashboard's window queries read only the windows asked for, through an index, on both
stores (read from the planner: SQLite's EXPLAIN QUERY PLAN after ANALYZE must search the covering
(window, start, …) index by window and start; PostgreSQL's EXPLAIN, with sequential and bitmap
scans priced out as on a large table, must bound its index read by start — its own choice of
index — so that no plan reads every stored window of a size)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, insert

from dashboards import data
from moodwire.store import analyze, open_store, topic_windows
from tests.dashboards.seed import seed

END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def plan(engine, query) -> str:
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            params = tuple(compiled.params[k] for k in compiled.positiontup)
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params).all()
            return "\n".join(str(r[-1]) for r in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")
        conn.exec_driver_sql("SET enable_bitmapscan = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + compiled.string, compiled.params).all())


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = open_store(url)
    with engine.begin() as conn:
        conn.execute(delete(topic_windows))
    seed(engine)
    history(engine)
    analyze(engine)
    return engine


def history(engine, keys: int = 25, days: int = 8) -> None:
    """A week of old 1h and 24h windows for many keys, so the planner sees a table shaped like
    production's (on a few hundred rows any plan is cheap and PostgreSQL picks by other costs)."""
    rows = []
    first = END - timedelta(days=400)  # outside every range asked for: they select a small part of it
    for k in range(keys):
        for i in range(days * 288):
            start = first + timedelta(minutes=5 * i)
            for name, span in (("1h", timedelta(hours=1)), ("24h", timedelta(days=1))):
                if name == "24h" and start.minute:
                    continue
                rows.append({"topic": f"key {k}", "window": name, "start": start, "end": start + span, "count": 1,
                             "mean_score": 0.0, "sum_sq": 0.0, "negative_share": 0.0, "neutral_share": 1.0,
                             "positive_share": 0.0, "late_count": 0, "most_negative": [], "most_positive": [],
                             "final": True, "updated_at": start, "kind": "topic"})
    with engine.begin() as conn:
        conn.execute(insert(topic_windows), rows)


def by_start(engine, found: str) -> bool:
    """The plan looks windows up by their start in an index."""
    if engine.dialect.name == "sqlite":
        return re.search(r"INDEX topic_windows_window_start \(window=\? AND start[=<>]", found) is not None
    conds = [line for line in found.splitlines() if "Index Cond" in line]
    return "Seq Scan" not in found and any("start" in line for line in conds)


@pytest.mark.parametrize("days", [1, 7, 90, 365])
def test_every_key_s_series_of_a_range_reads_the_window_start_index(engine, days):
    rng = data.TimeRange(END - timedelta(days=days), END)
    res = data.resolution(rng)
    series = plan(engine, data.windows_query(res.window, rng, starts=res.starts(rng), columns=data.OVERVIEW,
                                             dialect=engine.dialect.name))
    assert by_start(engine, series), series
    totals = plan(engine, data.totals_query(rng, dialect=engine.dialect.name))
    assert by_start(engine, totals), totals


def test_one_key_s_series_reads_an_index_not_the_table(engine):
    rng = data.TimeRange(END - timedelta(days=7), END)
    res = data.resolution(rng)
    found = plan(engine, data.windows_query(res.window, rng, "Macro", res.starts(rng), dialect=engine.dialect.name))
    assert "SCAN topic_windows\n" not in found + "\n" and "Seq Scan" not in found, found
