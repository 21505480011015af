"""The dashboard's window queries use the (window, start) index on both stores (read from the
planner: SQLite's EXPLAIN QUERY PLAN after ANALYZE; PostgreSQL's EXPLAIN with sequential scans
priced out, as on a large table)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete

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
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + compiled.string, compiled.params).all())


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = open_store(url)
    with engine.begin() as conn:
        conn.execute(delete(topic_windows))
    seed(engine)
    analyze(engine)
    return engine


@pytest.mark.parametrize("days", [1, 7, 90])
def test_every_key_s_series_of_a_range_reads_the_window_start_index(engine, days):
    rng = data.TimeRange(END - timedelta(days=days), END)
    res = data.resolution(rng)
    assert "topic_windows_window_start" in plan(engine, data.windows_query(res.window, rng, starts=res.starts(rng)))
    assert "topic_windows_window_start" in plan(engine, data.totals_query(rng))


def test_one_key_s_series_reads_an_index_not_the_table(engine):
    rng = data.TimeRange(END - timedelta(days=7), END)
    res = data.resolution(rng)
    found = plan(engine, data.windows_query(res.window, rng, "Macro", res.starts(rng)))
    assert "SCAN topic_windows\n" not in found + "\n" and "Seq Scan" not in found, found
