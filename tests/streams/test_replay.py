from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from moodwire.errors import ReplayError
from streams.ingest.replay import read_recorded, replay, schedule
from tests.streams.test_classify import read_all

SAMPLE = Path(__file__).resolve().parents[2] / "streams" / "samples" / "news_sample.jsonl"


def test_bundled_sample_is_a_few_hundred_items_over_days_and_topics():
    plan = read_recorded(SAMPLE)
    assert plan.skipped == []
    assert 300 <= len(plan.items) <= 600
    span = plan.items[-1].published_at - plan.items[0].published_at
    assert span.days >= 4
    assert all(i.url and "utm_" not in i.url for i in plan.items)
    assert len({i.id for i in plan.items}) == len(plan.items)
    assert sum("Harborline" in i.title for i in plan.items) >= 10  # the negative episode


def test_rows_are_sorted_and_shifted(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("title,published_at,source\nLater,2026-01-02T00:00:00Z,w\nEarlier,2026-01-01T00:00:00Z,w\n")
    now = datetime(2026, 11, 28, 15, 42, tzinfo=timezone.utc)
    plan = read_recorded(f, shift_to=now)
    assert [i.title for i in plan.items] == ["Earlier", "Later"]
    assert plan.items[-1].published_at == datetime(2026, 11, 28, tzinfo=timezone.utc)  # whole days: 00:00 kept
    assert (plan.items[1].published_at - plan.items[0].published_at).days == 1
    # started at any time of that day, a replay lands on the same times: the same windows
    later = read_recorded(f, shift_to=datetime(2026, 11, 28, 23, 59, tzinfo=timezone.utc))
    assert [i.published_at for i in later.items] == [i.published_at for i in plan.items]
    assert plan.shift == later.shift == timedelta(days=330) and read_recorded(f).shift == timedelta(0)


def test_bad_rows_are_reported_not_dropped_silently(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"title": "ok", "published_at": "2026-01-01T00:00:00Z"}) + "\n"
                 + json.dumps({"title": "no time"}) + "\n{oops\n" + json.dumps({"title": "", "published_at": "2026-01-01"}) + "\n")
    plan = read_recorded(f)
    assert len(plan.items) == 1
    assert plan.skipped == ["r.jsonl:2: published_at missing or not a time (None)",
                            "r.jsonl:3: not JSON (Expecting property name enclosed in double quotes)",
                            "r.jsonl:4: empty title"]
    assert plan.rows == 4 and plan.date_only == 1  # row 4's date had no time of day (then its title was empty)


def test_a_date_without_a_time_is_read_as_noon_utc(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("title,published_at\nBank fails,2023-03-10\nLater,2023-03-10T15:00:00+01:00\n")
    plan = read_recorded(f)
    assert [i.published_at.isoformat() for i in plan.items] == ["2023-03-10T12:00:00+00:00", "2023-03-10T14:00:00+00:00"]
    assert plan.date_only == 1


@pytest.mark.parametrize("content, name, fragment", [
    ("title,when\nx,y\n", "a.csv", "needs 'title' and 'published_at' columns"),
    ("", "a.jsonl", "has no rows"),
    ("x", "a.txt", "unsupported type '.txt'"),
])
def test_bad_files(tmp_path, content, name, fragment):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(ReplayError, match=fragment):
        read_recorded(f)


def test_schedule_rate_and_speedup():
    items = read_recorded(SAMPLE).items[:3]
    assert schedule(items, rate=2.0, speedup=None) == [0.0, 0.5, 1.0]
    gaps = schedule(items, rate=None, speedup=60.0)
    assert gaps[0] == 0 and gaps[1] == pytest.approx((items[1].published_at - items[0].published_at).total_seconds() / 60)
    with pytest.raises(ReplayError, match="not both"):
        schedule(items, 1.0, 2.0)
    with pytest.raises(ReplayError, match="positive"):
        schedule(items, -1.0, None)


def test_replay_paces_by_the_schedule():
    items = read_recorded(SAMPLE).items[:6]
    sent_at: list[tuple[float, int]] = []
    start = time.monotonic()
    replay(items, lambda batch: sent_at.append((time.monotonic() - start, len(batch))), [0, 0, 0.2, 0.2, 0.4, 0.4])
    assert sum(n for _, n in sent_at) == 6
    assert sent_at[0][1] == 2 and sent_at[-1][0] >= 0.4


@pytest.mark.integration
def test_replay_command_publishes_the_sample(kafka):
    env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": kafka}
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "replay", str(SAMPLE), "--rate", "2000",
                             "--no-progress"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    ids = {i.id for i in read_recorded(SAMPLE).items}
    assert f"replayed {len(ids)} items" in result.stdout
    on_topic = read_all(kafka, "news.raw", lambda r: r.key.decode() if r.key and r.key.decode() in ids else None)
    assert set(on_topic) == ids  # keyed by item id
