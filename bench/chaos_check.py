"""The chaos run's accounting (``bench.chaos``): what the topics hold against the documented
policy, computed here apart from the fold, and the windows against pandas."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pandas as pd

from bench.chaos import FUTURE, LATENESS, WINDOWS, Report, read_topic
from moodwire.errors import RecordError
from moodwire.records import DeadLetter, NewsItem, ScoredNews, TopicWindow, decode
from moodwire.topics import DEADLETTER, NEWS_RAW, NEWS_SCORED, SENTIMENT_WINDOWS


def _decoded(records, kind):
    out = []
    for record in records:
        try:
            out.append((record, decode(kind, record.value)))
        except RecordError:
            pass
    return out


def policy(raw_records, scored_records, lateness) -> tuple[list[ScoredNews], set, set]:
    """Which items count, and which are late or future, from what entered news.raw alone
    (invariant I8): per news.raw partition in offset order, the first record of an id decides;
    dated more than the tolerance after the clock: future; published more than the lateness
    before the newest publish time its partition held before it: late; else it counts. Returns
    the news.scored records that count (one per key and id) and the (key, id) pairs late and
    future — the keys an item has are those classify gave it (its topic, its watchlists)."""
    now = datetime.now(timezone.utc)
    keys: dict[str, dict[str, ScoredNews]] = {}
    for _, item in scored_records:
        keys.setdefault(item.id, {}).setdefault(item.key, item)
    by_partition: dict[int, list] = {}
    for record, item in raw_records:
        by_partition.setdefault(record.partition, []).append((record.offset, item))
    counted, late, future, seen = [], set(), set(), set()
    for entries in by_partition.values():
        newest = None
        for _, item in sorted(entries, key=lambda e: e[0]):
            if item.id in seen:
                continue
            seen.add(item.id)
            copies = keys.get(item.id, {})
            if item.published_at > now + FUTURE:
                future |= {(key, item.id) for key in copies}
            elif newest is not None and item.published_at < newest - lateness:
                late |= {(key, item.id) for key in copies}
            else:
                newest = item.published_at if newest is None else max(newest, item.published_at)
                counted += copies.values()
    return counted, late, future


def expected_counts(items: list[ScoredNews]) -> dict[tuple, int]:
    """(key, window, start) → count, with pandas."""
    frame = pd.DataFrame({"key": [i.key for i in items], "t": [i.published_at for i in items]})
    out = {}
    for window in WINDOWS.split(","):
        span_text, _, step_text = window.partition("/")
        span, step = pd.Timedelta(span_text), pd.Timedelta(step_text or span_text)
        base = frame["t"].dt.floor(step)
        for k in range(int(span / step)):
            counts = frame.assign(start=base - k * step).groupby(["key", "start"]).size()
            for (key, start), count in counts.items():
                out[(key, span_text, start.to_pydatetime())] = out.get((key, span_text, start.to_pydatetime()), 0) \
                    + int(count)
    return out


def check(bootstrap: str, report: Report, lateness=LATENESS) -> None:
    raw_records = _decoded(read_topic(bootstrap, NEWS_RAW), NewsItem)
    raw = [item for _, item in raw_records]
    scored = _decoded(read_topic(bootstrap, NEWS_SCORED), ScoredNews)
    letters = [letter for _, letter in _decoded(read_topic(bootstrap, DEADLETTER), DeadLetter)]
    classify_dead = set()
    aggregate_dead: dict[str, set] = {}
    for letter in letters:
        report.dead[f"{letter.stage}:{letter.reason}"] = report.dead.get(f"{letter.stage}:{letter.reason}", 0) + 1
        payload = base64.b64decode(letter.payload_b64)
        if letter.stage == "classify":
            classify_dead.add(payload)
        elif letter.stage == "aggregate" and letter.reason in ("late", "future"):
            item = decode(ScoredNews, payload)
            aggregate_dead.setdefault(letter.reason, set()).add((item.key, item.id))
    scored_ids = {item.id for _, item in scored}
    report.lost_in_classify = len({i.id for i in raw} - scored_ids)
    counted, late, future = policy(raw_records, scored, lateness)
    report.wrong_dead = len(late ^ aggregate_dead.get("late", set())) + \
        len(future ^ aggregate_dead.get("future", set()))
    finals: dict[tuple, TopicWindow] = {}
    for _, window in _decoded(read_topic(bootstrap, SENTIMENT_WINDOWS), TopicWindow):
        if window.final:
            finals[(window.topic, window.window, window.start)] = window
    report.final_windows = len(finals)
    expected = expected_counts(counted)
    for key in expected.keys() | finals.keys():
        got = finals[key].count if key in finals else 0
        want = expected.get(key, 0)
        report.lost += max(0, want - got)
        report.double += max(0, got - want)
        if got != want and len(report.examples) < 8:
            report.examples.append(f"{key[0]} {key[1]} {key[2]:%Y-%m-%d %H:%M}: {got} counted, {want} expected"
                                   + ("" if key in finals else " (no final window)"))
