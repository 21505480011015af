"""Helpers of the aggregation tests: scored input with known event times, a real
``moodwire aggregate`` process, the final windows it emitted, and the expectation computed
independently with pandas."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
from kafka import KafkaProducer

from moodwire.errors import RecordError
from moodwire.records import ScoredNews, TopicWindow, decode, item_id
from moodwire.topics import NEWS_SCORED, SENTIMENT_WINDOWS
from tests.streams.test_classify import read_all

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
WINDOWS = "5m,1h/5m,24h/1h"


WATCHLISTS = ["US regional banks", "crypto"]


def scored_items(topics: list[str], n: int, seed: int = 7, spread: timedelta = timedelta(hours=3),
                 jitter: timedelta = timedelta(minutes=3), watchlists: list[str] = ()) -> list[ScoredNews]:
    """``n`` items over ``spread``, arriving in time order with up to ``jitter`` of disorder; each
    matches each of ``watchlists`` with probability 0.3."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = T0 + spread * (i / n) + timedelta(seconds=rng.uniform(-1, 1) * jitter.total_seconds())
        item = make(topics[rng.randrange(len(topics))], at, rng, f"{seed}-{i}")
        matched = [w for w in watchlists if rng.random() < 0.3]
        out.append(item.model_copy(update={"watchlists": matched}) if matched else item)
    return out


def with_copies(items: list[ScoredNews]) -> list[ScoredNews]:
    """The news.scored records of items: each item, then one copy per watchlist it matched
    (``watchlist`` set), as moodwire classify sends them."""
    out = []
    for item in items:
        out.append(item)
        out += [item.model_copy(update={"watchlist": w}) for w in item.watchlists]
    return out


def keys_of(topics: list[str], watchlists: list[str] = ()) -> set[str]:
    """The window keys of these topics and watchlists."""
    return set(topics) | {f"watchlist:{w}" for w in watchlists}


def make(topic: str, at: datetime, rng: random.Random, tag: str) -> ScoredNews:
    weights = [rng.random() ** 2 for _ in range(3)]
    total = sum(weights)
    neg, neu, pos = (w / total for w in weights)
    sentiment = ("negative", "neutral", "positive")[max(range(3), key=lambda k: (neg, neu, pos)[k])]
    title = f"{topic} headline {tag}"
    at = at.replace(microsecond=(at.microsecond // 1000) * 1000)  # the wire carries milliseconds
    return ScoredNews(id=item_id(None, "test", title), source="test", title=title, published_at=at,
                      fetched_at=at, topic=topic, topic_confidence=0.9, sentiment=sentiment,
                      probs={"negative": neg, "neutral": neu, "positive": pos}, score=pos - neg,
                      model="test@1", classified_at=at)


def produce(bootstrap: str, items: list[ScoredNews], garbage: list[bytes] = ()) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for record in with_copies([i for i in items if i.watchlist is None]):
        key = record.topic if record.watchlist is None else f"watchlist:{record.watchlist}"
        producer.send(NEWS_SCORED, key=key.encode(), value=record.encode())
    for payload in garbage:
        producer.send(NEWS_SCORED, key=b"garbage", value=payload)
    producer.flush()
    producer.close()


def start_aggregate(bootstrap: str, home: Path, log: Path, store_url: str | None = None, sink: bool = False,
                    store: str = "memory://", datadir: Path | None = None, extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": bootstrap, "MOODWIRE_HOME": str(home),
           "MOODWIRE_AGGREGATE_WINDOWS": WINDOWS, "MOODWIRE_AGGREGATE_LATENESS": "10m",
           "MOODWIRE_AGGREGATE_IDLE": "5s", "MOODWIRE_AGGREGATE_EMIT_INTERVAL_MS": "500",
           "MOODWIRE_AGGREGATE_STORE": store, **(extra or {})}
    if store_url:
        env["MOODWIRE_STORE_URL"] = store_url
    args = [sys.executable, "-m", "moodwire_cli", "aggregate", "--sink" if sink else "--no-sink"]
    if datadir:
        args += ["--datadir", str(datadir)]
    return subprocess.Popen(args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def scored_in_topic(bootstrap: str, topics: set[str]) -> list[ScoredNews]:
    """The records news.scored really holds (a producer retry under load can store one twice;
    the aggregator must count every record once, so the expectation is computed from these),
    watchlist copies included."""
    def keep(record):
        try:
            item = decode(ScoredNews, record.value)
        except RecordError:
            return None
        return item if item.topic in topics else None
    return read_all(bootstrap, NEWS_SCORED, keep)


def windows_of(bootstrap: str, topics: set[str]) -> list[TopicWindow]:
    def keep(record):
        w = decode(TopicWindow, record.value)
        return w if w.topic in topics else None
    return read_all(bootstrap, SENTIMENT_WINDOWS, keep)


def final_windows(bootstrap: str, topics: set[str], want: int, timeout_s: float = 180,
                  process: subprocess.Popen | None = None, log: Path | None = None) -> dict:
    """{(topic, window, start): last final TopicWindow}, once ``want`` distinct finals are there."""
    deadline = time.monotonic() + timeout_s
    while True:
        finals = {}
        for w in windows_of(bootstrap, topics):
            if w.final:
                finals[(w.topic, w.window, w.start)] = w
        if len(finals) >= want:
            return finals
        if time.monotonic() > deadline:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGUSR2)  # the worker logs its stacks: what is it waiting on?
                time.sleep(2)
            return finals
        if process is not None and process.poll() is not None:
            raise AssertionError(f"aggregate exited with {process.returncode}:\n"
                                 + (log.read_text()[-3000:] if log else ""))
        time.sleep(1.0)


def expected_windows(items: list[ScoredNews], spec: str = WINDOWS) -> pd.DataFrame:
    """The window aggregates computed from scratch with pandas (no project code). ``items`` are
    news.scored records: an item's watchlist copy counts under ``watchlist:NAME``."""
    keys = [i.topic if i.watchlist is None else f"watchlist:{i.watchlist}" for i in items]
    frame = pd.DataFrame({"topic": keys, "t": [i.published_at for i in items],
                          "score": [i.score for i in items], "sentiment": [i.sentiment for i in items]})
    units = {"m": "min", "h": "h", "s": "s", "d": "D"}
    parts = []
    for window in spec.split(","):
        span_text, _, step_text = window.partition("/")
        step_text = step_text or span_text
        span = pd.Timedelta(int(span_text[:-1]), units[span_text[-1]])
        step = pd.Timedelta(int(step_text[:-1]), units[step_text[-1]])
        base = frame["t"].dt.floor(step)
        for k in range(int(span / step)):
            part = frame.assign(start=base - k * step, window=span_text)
            parts.append(part)
    rows = pd.concat(parts)
    grouped = rows.groupby(["topic", "window", "start"])
    out = grouped.agg(count=("score", "size"), mean_score=("score", "mean"),
                      sum_sq=("score", lambda s: float((s * s).sum())),
                      negative_share=("sentiment", lambda s: float((s == "negative").mean())),
                      positive_share=("sentiment", lambda s: float((s == "positive").mean())))
    return out.reset_index()


def assert_windows_equal(finals: dict, expected: pd.DataFrame) -> None:
    assert len(finals) == len(expected), f"{len(finals)} final windows, expected {len(expected)}"
    for row in expected.itertuples(index=False):
        key = (row.topic, row.window, row.start.to_pydatetime())
        assert key in finals, f"missing window {key}"
        got = finals[key]
        assert got.count == row.count, (key, got.count, row.count)
        assert math.isclose(got.mean_score, row.mean_score, abs_tol=1e-9), (key, got.mean_score, row.mean_score)
        assert math.isclose(got.sum_sq, row.sum_sq, abs_tol=1e-9)
        assert math.isclose(got.negative_share, row.negative_share, abs_tol=1e-12)
        assert math.isclose(got.positive_share, row.positive_share, abs_tol=1e-12)
        assert got.late_count == 0
