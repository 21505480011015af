"""The back-test and the live pipeline agree: the same recorded news through moodwire replay →
classify → aggregate (real processes, embedded broker) gives the same final windows and alert
events as moodwire backtest. Both classify in fp32 (MOODWIRE_INT8=false): int8 activations are
quantised per batch, so their scores would depend on how the items happened to be batched.

The allowed lateness is a week in both: replayed as fast as it can be, the news reaches the
aggregate worker out of publish-time order (classify reads news.raw's partitions in turn, each
poll in partition order), and with the default 10 minutes what counts as late would depend on
that arrival order, in the live run only. Within the lateness the result does not depend on it.

The news is replayed at 10 items a second, as a feed delivers it: each key's headlines then
reach the aggregate in publish order (classify sends each batch in that order), which the
rules judged early on partial windows need to start their alerts where the back-test does
(``watchlist-early``: tests/alerts/test_early.py)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moodwire.records import AlertEvent, TopicWindow, decode
from moodwire.topics import ALERTS, SENTIMENT_WINDOWS
from tests.streams.aggregate_support import start_aggregate
from tests.streams.test_aggregate_worker import stop
from tests.streams.test_classify import read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "streams" / "samples" / "svb_2023_demo.csv"
RULES = ROOT / "config" / "rules.feeds.yaml"
WATCHLISTS = ROOT / "config" / "watchlists.example.yaml"


def news_slice(path: Path, start: str, end: str) -> Path:
    with DEMO.open(encoding="utf-8", newline="") as src, path.open("w", encoding="utf-8", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(row for row in reader if start <= row["published_at"] < end)
    return path


def close_sets(a: list[float], b: list[float], tol: float = 1e-4) -> bool:
    """Every score of each list is within ``tol`` of one of the other's."""
    return all(any(abs(x - y) <= tol for y in b) for x in a) and all(any(abs(x - y) <= tol for x in a) for y in b)


def test_backtest_and_live_pipeline_give_the_same_windows_and_alerts(fresh_embedded, tmp_path):
    news = news_slice(tmp_path / "news.csv", "2023-03-09", "2023-03-14")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOODWIRE_")},
           "MOODWIRE_HOME": str(tmp_path / "home"), "MOODWIRE_INT8": "false", "MOODWIRE_DEVICE": "cpu",
           "MOODWIRE_WATCHLISTS": str(WATCHLISTS), "MOODWIRE_AGGREGATE_WINDOWS": "24h/1h",
           "MOODWIRE_AGGREGATE_LATENESS": "7d", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = tmp_path / "backtest"
    done = subprocess.run([sys.executable, "-m", "moodwire_cli", "backtest", str(news), "--rules", str(RULES),
                           "--out", str(out), "--no-progress"], env=env, capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    expected_windows = [decode(TopicWindow, line) for line in (out / "windows.jsonl").read_bytes().splitlines()]
    expected_alerts = [decode(AlertEvent, line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    assert any(a.status == "firing" and a.kind == "watchlist" for a in expected_alerts), done.stdout
    assert any(w.kind == "watchlist" for w in expected_windows)

    live_env = {**env, "MOODWIRE_KAFKA_BOOTSTRAP": fresh_embedded}
    logs = {name: tmp_path / f"{name}.log" for name in ("classify", "aggregate", "replay")}
    classify = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "classify"], env=live_env, cwd=ROOT,
                                stdout=logs["classify"].open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    aggregate = start_aggregate(fresh_embedded, tmp_path / "home", logs["aggregate"], extra={
        "MOODWIRE_ALERT_RULES": str(RULES), "MOODWIRE_AGGREGATE_WINDOWS": "24h/1h", "MOODWIRE_AGGREGATE_IDLE": "5s",
        "MOODWIRE_AGGREGATE_LATENESS": "7d"})
    try:
        replayed = subprocess.run([sys.executable, "-m", "moodwire_cli", "replay", str(news), "--rate", "10", "--no-progress"],
                                  env=live_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        deadline = time.monotonic() + 400
        while True:
            windows = {(w.topic, w.window, w.start): w for w in read_all(
                fresh_embedded, SENTIMENT_WINDOWS, lambda r: decode(TopicWindow, r.value)) if w.final}
            alerts = read_all(fresh_embedded, ALERTS, lambda r: decode(AlertEvent, r.value))
            if len(windows) >= len(expected_windows) and len(alerts) >= len(expected_alerts):
                break
            for name, process in (("classify", classify), ("aggregate", aggregate)):
                assert process.poll() is None, f"{name} exited:\n" + logs[name].read_text()[-3000:]
            assert time.monotonic() < deadline, (
                f"live: {len(windows)} final windows, {len(alerts)} alert events; back-test: {len(expected_windows)}, "
                f"{len(expected_alerts)}\n" + logs["aggregate"].read_text()[-2000:])
            time.sleep(2)
    finally:
        stop(classify)
        stop(aggregate)

    assert set(windows) == {(w.topic, w.window, w.start) for w in expected_windows}
    for w in expected_windows:
        got = windows[(w.topic, w.window, w.start)]
        assert (got.count, got.kind, got.late_count) == (w.count, w.kind, w.late_count), (w.topic, w.start)
        assert math.isclose(got.mean_score, w.mean_score, abs_tol=1e-4), (w.topic, w.start)
        assert math.isclose(got.negative_share, w.negative_share, abs_tol=1e-9), (w.topic, w.start)
        # evidence: the same extremes; where two items score within fp32 noise of each other the
        # cut may take either, so compare the scores the evidence carries
        assert close_sets([e.score for e in got.evidence], [e.score for e in w.evidence]), (w.topic, w.start)

    def shape(a: AlertEvent):
        return (a.fingerprint, a.seq, a.rule, a.topic, a.kind, a.status, a.starts_at, a.ends_at, a.reason,
                len(a.evidence))

    assert sorted(map(shape, alerts)) == sorted(map(shape, expected_alerts))
    by_key = {(a.fingerprint, a.seq): a for a in alerts}
    for a in expected_alerts:
        got = by_key[(a.fingerprint, a.seq)]
        assert math.isclose(got.value, a.value, abs_tol=1e-4)
        assert close_sets([e.score for e in got.evidence], [e.score for e in a.evidence])
    print(json.dumps({"windows": len(expected_windows), "alerts": len(expected_alerts)}))
