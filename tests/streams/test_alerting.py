"""A replayed negative episode through moodwire aggregate (real Faust worker, real broker)
fires exactly one alert and resolves it exactly once, also across a SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from moodwire.records import AlertEvent, ScoredNews, decode, item_id
from moodwire.topics import ALERTS
from tests.streams.aggregate_support import T0, produce, start_aggregate
from tests.streams.test_aggregate_worker import stop, wait_for_log
from tests.streams.test_classify import read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """
rules:
  - name: negative-turn
    topics: [Financials, Macro]
    window: 1h
    when: {mean_below: -0.3}
    min_count: 10
    for: 10m
    recover: -0.1
    keep_firing_for: 10m
    severity: critical
    labels: {team: credit-risk}
"""


def scored(topic: str, minute: int, negative: bool) -> ScoredNews:
    probs = {"negative": 0.85, "neutral": 0.1, "positive": 0.05} if negative else \
        {"negative": 0.1, "neutral": 0.3, "positive": 0.6}
    title = f"{topic}: {'Harborline Bank losses deepen' if negative else 'steady trading'} at minute {minute}"
    at = T0 + timedelta(minutes=minute)
    return ScoredNews(id=item_id(None, "test", title), source="test", title=title, url=f"https://news.example/{minute}",
                      published_at=at, fetched_at=at, topic=topic, topic_confidence=0.9,
                      sentiment="negative" if negative else "positive", probs=probs,
                      score=probs["positive"] - probs["negative"], model="test@1", classified_at=at)


def episode() -> list[ScoredNews]:
    """Six hours, one item a minute per topic; Financials turns sharply negative in hour 3."""
    items = []
    for minute in range(360):
        items.append(scored("Financials", minute, 120 <= minute < 180))
        items.append(scored("Macro", minute, minute % 7 == 0))
    return items


def alerts_of(bootstrap: str) -> list[AlertEvent]:
    return read_all(bootstrap, ALERTS, lambda r: decode(AlertEvent, r.value))


def wait_for_alerts(bootstrap: str, want: int, worker, log, timeout_s: float = 180) -> list[AlertEvent]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = alerts_of(bootstrap)
        if len({(e.fingerprint, e.seq) for e in events}) >= want or time.monotonic() > deadline:
            return events
        assert worker.poll() is None, log.read_text()[-3000:]
        time.sleep(1.0)


def check(events: list[AlertEvent]) -> None:
    distinct = {(e.fingerprint, e.seq): e for e in events}
    assert [(e.status, e.topic, e.seq) for e in sorted(distinct.values(), key=lambda e: e.seq)] == \
        [("firing", "Financials", 1), ("resolved", "Financials", 2)]
    firing, resolved = distinct[(events[0].fingerprint, 1)], distinct[(events[0].fingerprint, 2)]
    assert firing.rule == "negative-turn" and firing.severity == "critical" and firing.labels == {"team": "credit-risk"}
    assert firing.value < -0.3 and firing.ends_at is None and resolved.ends_at is not None
    assert T0 + timedelta(hours=2) < firing.starts_at < T0 + timedelta(hours=4)
    assert resolved.starts_at == firing.starts_at and resolved.ends_at > firing.starts_at
    assert firing.evidence and all("Harborline" in e.title and e.score < -0.5 for e in firing.evidence)
    assert all(e.url.startswith("https://news.example/") for e in firing.evidence)


def test_a_negative_episode_fires_one_alert_and_resolves_it_once(fresh_embedded, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    produce(fresh_embedded, episode())
    log = tmp_path / "aggregate.log"
    worker = start_aggregate(fresh_embedded, tmp_path / "home", log, extra={"MOODWIRE_ALERT_RULES": str(rules)})
    try:
        events = wait_for_alerts(fresh_embedded, 2, worker, log)
        time.sleep(3)  # nothing more may come
        events = alerts_of(fresh_embedded)
    finally:
        stop(worker)
    assert len(events) == 2, [(e.status, e.seq) for e in events]
    check(events)
    assert "alert firing: rule negative-turn on Financials, value " in log.read_text()


def test_sigkill_of_the_evaluator_neither_loses_nor_changes_an_alert(fresh_embedded, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    produce(fresh_embedded, episode())
    log = tmp_path / "aggregate.log"
    extra = {"MOODWIRE_ALERT_RULES": str(rules), "MOODWIRE_AGGREGATE_BATCH": "30"}
    worker = start_aggregate(fresh_embedded, tmp_path / "home", log, extra=extra)
    try:
        wait_for_log(log, "recovered:", 1, worker)
        time.sleep(2.0)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        worker = start_aggregate(fresh_embedded, tmp_path / "home", log, extra=extra)
        events = wait_for_alerts(fresh_embedded, 2, worker, log, timeout_s=300)
    finally:
        stop(worker)
    check(events)  # a repeat after the crash carries the same fingerprint and seq
