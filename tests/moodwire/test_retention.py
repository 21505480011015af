"""Retention (``moodwire store prune``): what the MOODWIRE_STORE_KEEP_* settings no longer keep
is deleted, the rest stays, on SQLite and PostgreSQL, and pruning while the sink writes loses
nothing that should stay."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, insert, select

from moodwire.retention import Retention, parse_window_keeps, prune
from moodwire.settings import load_settings
from moodwire.store import (alert_acks, alert_events, notify_attempts, notify_batches, notify_outbox, open_store,
                            scored_news, topic_windows)
from streams.aggregate.store_sink import upsert_items
from tests.streams.aggregate_support import make

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
POLICY = Retention(timedelta(days=90), parse_window_keeps("5m=30d,*=730d"), timedelta(days=365), timedelta(days=90))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = open_store(url)
    with engine.begin() as conn:  # the PostgreSQL server is shared by the session
        for t in (notify_attempts, notify_outbox, notify_batches, alert_events, alert_acks, scored_news,
                  topic_windows):
            conn.execute(delete(t))
    return engine


def window(topic: str, name: str, end: datetime, span: timedelta) -> dict:
    return {"topic": topic, "window": name, "start": end - span, "end": end, "count": 1, "mean_score": 0.0,
            "sum_sq": 0.0, "negative_share": 0.0, "neutral_share": 1.0, "positive_share": 0.0, "late_count": 0,
            "most_negative": [], "most_positive": [], "final": True, "updated_at": end, "kind": "topic"}


def event(fp: str, starts: datetime, ends: datetime | None, seq: int = 1) -> dict:
    return {"fingerprint": fp, "seq": seq, "rule": "r", "topic": "Macro", "status": "resolved" if ends else "firing",
            "severity": "warning", "labels": {}, "value": -0.5, "threshold": -0.3, "window": "1h",
            "starts_at": starts, "ends_at": ends, "evidence": [], "received_at": ends or starts, "kind": "topic"}


def outbox(status: str, at: datetime) -> dict:
    return {"receiver": "ops", "group_key": "g", "fingerprint": "fp", "seq": 1 if status == "sent" else 2,
            "status": status, "group_wait_s": 0.0, "group_interval_s": 0.0, "created_at": at, "updated_at": at}


def test_prune_deletes_what_the_policy_no_longer_keeps_and_nothing_else(engine):
    rng = random.Random(3)
    old = make("Macro", NOW - timedelta(days=100), rng, "old")
    recent = make("Macro", NOW - timedelta(days=10), rng, "new")
    upsert_items(engine, [old, recent])
    with engine.begin() as conn:
        conn.execute(insert(topic_windows), [
            window("Macro", "5m", NOW - timedelta(days=40), timedelta(minutes=5)),   # gone: 5m kept 30d
            window("Macro", "5m", NOW - timedelta(days=10), timedelta(minutes=5)),   # kept
            window("Macro", "1h", NOW - timedelta(days=40), timedelta(hours=1)),     # kept: * is 730d
            window("Macro", "24h", NOW - timedelta(days=800), timedelta(days=1)),    # gone
        ])
        conn.execute(insert(alert_events), [
            event("ended-long-ago", NOW - timedelta(days=401), None),
            event("ended-long-ago", NOW - timedelta(days=401), NOW - timedelta(days=400), seq=2),  # gone, both
            event("still-firing", NOW - timedelta(days=400), None),                              # kept
            event("ended-recently", NOW - timedelta(days=11), NOW - timedelta(days=10)),          # kept
        ])
        conn.execute(insert(alert_acks), [
            {"fingerprint": "ended-long-ago", "starts_at": NOW - timedelta(days=401), "acked_by": "ana",
             "acked_at": NOW - timedelta(days=401), "comment": ""}])
        conn.execute(insert(notify_outbox), [outbox("sent", NOW - timedelta(days=100)),      # gone
                                             outbox("pending", NOW - timedelta(days=100))])  # kept: not finished
    done = prune(engine, POLICY, now=NOW, batch=1)  # one row a transaction: the batching is exercised
    assert {k: v for k, v in done.items() if v} == {"scored_news": 1, "topic_windows": 2, "alert_events": 2,
                                                    "alert_acks": 1, "notify_outbox": 1}
    with engine.connect() as conn:
        assert conn.execute(select(scored_news.c.id)).scalars().all() == [recent.id]
        assert sorted(conn.execute(select(topic_windows.c.window)).scalars()) == ["1h", "5m"]
        assert sorted(conn.execute(select(alert_events.c.fingerprint)).scalars()) == ["ended-recently", "still-firing"]
        assert conn.execute(select(func.count()).select_from(alert_acks)).scalar() == 0
        assert conn.execute(select(notify_outbox.c.status)).scalars().all() == ["pending"]
    assert not any(prune(engine, POLICY, now=NOW).values())  # nothing more to do


def test_pruning_while_the_sink_writes_loses_nothing_that_should_stay(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    rng = random.Random(5)
    upsert_items(engine, [make("Macro", NOW - timedelta(days=200, seconds=i), rng, f"old{i}") for i in range(6000)])
    written: list[str] = []
    errors: list[BaseException] = []

    def sink():  # what the aggregate worker's sink does: batches of upserts, for as long as prune runs
        try:
            for b in range(40):
                items = [make("Macro", NOW - timedelta(minutes=b, seconds=i), rng, f"new{b}-{i}") for i in range(100)]
                upsert_items(engine, items)
                written.extend(i.id for i in items)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writer = threading.Thread(target=sink)
    writer.start()
    done = prune(engine, POLICY, now=NOW, batch=250)
    writer.join()
    assert not errors and done["scored_news"] == 6000
    with engine.connect() as conn:
        kept = set(conn.execute(select(scored_news.c.id)).scalars())
    assert kept == set(written) and len(written) == 4000


def test_the_prune_command_applies_the_settings_and_bad_settings_say_what_to_fix(tmp_path):
    env = {"MOODWIRE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    engine = open_store(f"sqlite:///{tmp_path / 'moodwire.db'}")
    upsert_items(engine, [make("Macro", datetime.now(timezone.utc) - timedelta(days=3), random.Random(1), "a")])
    done = subprocess.run([sys.executable, "-m", "moodwire_cli", "store", "prune"], env={**env,
                          "MOODWIRE_STORE_KEEP_ITEMS": "2d"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "scored_news 1" in done.stdout, done.stderr
    bad = subprocess.run([sys.executable, "-m", "moodwire_cli", "store", "prune"], env={**env,
                         "MOODWIRE_STORE_KEEP_WINDOWS": "5m:30d"}, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "MOODWIRE_STORE_KEEP_WINDOWS" in bad.stderr and "WINDOW=KEEP" in bad.stderr
    assert load_settings(environ={"MOODWIRE_STORE_KEEP_ITEMS": "forever"}).retention.items is None
