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


def policy(raw_records, scored_records, lateness) -> tuple[list[ScoredNews], set, set, int]:
    """Which items count under each key, and which are late or future, from what entered
    news.raw (invariant I8): per news.raw partition in offset order, each record's input time is
    the newest publish time up to it (items dated past the clock's tolerance left out). An item
    dated past the tolerance is future. Under each key, the earliest news.raw record whose reading
    gave the item that key decides: late when the item was published more than the lateness
    before that record's input time, else it counts once. (A repeat is normally a duplicate; the
    model can read a repeat, classified in another batch, under another key, and that key's
    reading arrived with the repeat.) Each news.scored record is matched to its news.raw record
    by id, partition and input time; ``unmatched`` counts records whose stamp matches none —
    classify's stamps checked against this independent computation. Returns the records that
    count, the (key, id) pairs late and future, ``unmatched``, and the (key, id) pairs decided by a
    repeat rather than by the item's first arrival."""
    now = datetime.now(timezone.utc)
    arrivals: dict[str, list[tuple[int, int, datetime | None]]] = {}  # id → (partition, offset, input time)
    by_partition: dict[int, list] = {}
    for record, item in raw_records:
        by_partition.setdefault(record.partition, []).append((record.offset, item))
    for partition, entries in by_partition.items():
        newest = None
        for offset, item in sorted(entries, key=lambda e: e[0]):
            if item.published_at <= now + FUTURE and (newest is None or item.published_at > newest):
                newest = item.published_at
            arrivals.setdefault(item.id, []).append((partition, offset, newest))
    deciding: dict[tuple[str, str], tuple[int, int, datetime | None, ScoredNews]] = {}
    unmatched = 0
    for _, item in scored_records:
        found = [(p, o, t) for p, o, t in arrivals.get(item.id, ()) if p == item.source_partition
                 and t == item.input_time]
        if not found:
            unmatched += 1
            continue
        p, o, t = min(found, key=lambda a: a[1])
        key = (item.key, item.id)
        if key not in deciding or o < deciding[key][1]:
            deciding[key] = (p, o, t, item)
    counted, late, future = [], set(), set()
    reread = {key for key, (_, offset, _, _) in deciding.items() if offset != min(o for _, o, _ in arrivals[key[1]])}
    for key, (_, _, at, item) in deciding.items():
        if item.published_at > now + FUTURE:
            future.add(key)
        elif at is not None and item.published_at < at - lateness:
            late.add(key)
        else:
            counted.append(item)
    return counted, late, future, unmatched, reread


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
    counted, late, future, report.unmatched_stamps, reread = policy(raw_records, scored, lateness)
    report.wrong_dead = len(late ^ aggregate_dead.get("late", set())) + \
        len(future ^ aggregate_dead.get("future", set()))
    # Only the faults injected may be late or future: news that was on time on arrival never is.
    titles = {item.id: item.title for _, item in raw_records}
    report.uninjected_dead = sum(1 for key in late - reread if not titles[key[1]].endswith("(late)")) + \
        sum(1 for key in future - reread if not titles[key[1]].endswith("(2100)"))
    report.reread_late = len(late & reread)
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
