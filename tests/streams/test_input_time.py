"""Invariant I8 (docs/aggregate-worker.md): an item is late only if it was late when it entered
news.raw, whatever order a classify group reads news.raw in.

A model of news.raw (several partitions of items whose publish times wander, with repeats,
stragglers and future dates) is read by a classify group of several members, with the real
``InputClock``, in generated interleavings: batches of one or two partitions at a time (a backlog
read a partition at a time is the worst case), publication of a batch before its commit, crashes
that drop what was not committed, rebalances that move partitions, on a broker that keeps commit
metadata or drops it (the embedded one). The news.scored records that leave it are routed by key
and folded by the real ``Aggregator`` in generated micro-batches. The expectation is computed from
news.raw alone, apart from both."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moodwire.records import ScoredNews, item_id
from moodwire.spans import parse_windows
from streams.aggregate.fold import Aggregator
from streams.aggregate.keys import key_parts
from streams.backtest.simulate import commit
from streams.classify.inputs import InputClock

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
T0 = NOW - timedelta(hours=3)
LATENESS = timedelta(minutes=10)  # the shipped default
FUTURE = timedelta(minutes=15)
TOPICS = ["Macro", "Company | Product News", "Stock Commentary"]
WINDOWS = "5m,1h/5m"


def _item(n: int, at: datetime) -> ScoredNews:
    title = f"headline {n}"
    return ScoredNews(id=item_id(None, "test", title), source="test", title=title, published_at=at, fetched_at=at,
                      topic=TOPICS[n % len(TOPICS)], topic_confidence=0.9, sentiment="negative",
                      probs={"negative": 0.8, "neutral": 0.1, "positive": 0.1}, score=-0.7, model="test@1",
                      classified_at=NOW)


@st.composite
def news_raw(draw) -> list[list[ScoredNews]]:
    """Partitions of items; publish times move forward by up to 6 minutes, some straggle up
    to 40 minutes behind (late past 10), a few are dated 2100, some ids come again."""
    parts, serial = [], 0
    for _ in range(draw(st.integers(1, 3))):
        at, items = T0 + timedelta(minutes=draw(st.integers(0, 20))), []
        for _ in range(draw(st.integers(0, 30))):
            kind = draw(st.sampled_from(["next"] * 8 + ["straggler", "repeat", "future"]))
            if kind == "repeat" and items:
                items.append(items[draw(st.integers(0, len(items) - 1))])
                continue
            serial += 1
            if kind == "future":
                items.append(_item(serial, datetime(2100, 1, 1, tzinfo=timezone.utc)))
            elif kind == "straggler":
                items.append(_item(serial, at - timedelta(minutes=draw(st.integers(1, 40)))))
            else:
                at += timedelta(seconds=draw(st.integers(0, 360)))
                items.append(_item(serial, at))
        parts.append(items)
    return parts


OPS = st.lists(st.tuples(st.sampled_from(["read"] * 5 + ["publish"] * 4 + ["crash", "rebalance"]),
                         st.integers(0, 7), st.integers(1, 12)), max_size=60)


class Group:
    """A classify group over the model of news.raw: members, positions, commits."""

    def __init__(self, parts, members: int, keeps_metadata: bool) -> None:
        self.parts, self.keeps_metadata = parts, keeps_metadata
        self.clocks = [InputClock(FUTURE, lambda: NOW) for _ in range(members)]
        self.owner = {p: p % members for p in range(len(parts))}
        self.committed = {p: (0, None) for p in range(len(parts))}
        self.position = {}
        self.pending = [[] for _ in range(members)]
        self.sent: list[ScoredNews] = []
        for p in self.owner:
            self._assign(p)

    def _assign(self, p: int) -> None:  # streams.classify.worker._Rebalance.on_partitions_assigned
        clock, (offset, metadata) = self.clocks[self.owner[p]], self.committed[p]
        if offset == 0:
            clock.rebuild(p, ())
        elif not (self.keeps_metadata and clock.restore(p, metadata)):
            clock.rebuild(p, [item.published_at for item in self.parts[p][:offset]])
        self.position[p] = offset

    def held(self, m: int) -> list[int]:
        return [p for p, owner in self.owner.items() if owner == m]

    def read(self, m: int, pick: int, size: int) -> None:
        held = self.held(m)
        if not held:
            return
        chosen = {held[pick % len(held)], held[(pick // 2) % len(held)]}
        clock, records, offsets = self.clocks[m], [], {}
        before = dict(clock.newest)
        for p in sorted(chosen):
            start = self.position[p]
            for item in self.parts[p][start:start + size]:
                records.append(item.model_copy(update={"source_partition": p,
                                                       "input_time": clock.advance(p, item.published_at)}))
            self.position[p] = offsets[p] = min(len(self.parts[p]), start + size)
        if not records:
            return
        view = clock.view(before, {p: p in offsets or self.position[p] < len(self.parts[p]) for p in held},
                          range(len(self.parts)))
        metadata = {p: clock.metadata(p) for p in offsets}
        self.pending[m].append(([r.model_copy(update={"inputs": view}) for r in records], offsets, metadata))

    def publish(self, m: int, commit_it: bool = True) -> None:
        if not self.pending[m]:
            return
        records, offsets, metadata = self.pending[m].pop(0)
        self.sent += sorted(records, key=lambda r: r.published_at)  # streams.classify.worker.keyed_records
        if commit_it:
            for p, offset in offsets.items():
                self.committed[p] = (offset, metadata[p] if self.keeps_metadata else None)

    def crash(self, m: int) -> None:
        self.pending[m] = []
        self.clocks[m].forget(self.held(m))
        for p in self.held(m):
            self._assign(p)

    def rebalance(self, seed: int) -> None:
        for m in range(len(self.clocks)):  # a batch in flight is sent; its commit is refused
            while self.pending[m]:
                self.publish(m, commit_it=False)
            self.clocks[m].forget(self.held(m))
        self.owner = {p: (p + seed) % len(self.clocks) for p in self.owner}
        for p in self.owner:
            self._assign(p)

    def drain(self) -> None:
        for m in range(len(self.clocks)):
            while self.pending[m]:
                self.publish(m)
        while any(self.position[p] < len(self.parts[p]) for p in self.owner):
            for p in self.owner:
                self.read(self.owner[p], self.held(self.owner[p]).index(p), 10)
                self.publish(self.owner[p])


def expected(parts) -> tuple[set, dict]:
    """From news.raw alone: per partition in offset order, the first record of an id decides;
    dated past the clock's tolerance: future; behind the newest time before it by more than the
    lateness: late; else counted. Returns the late ids and the counts per (key, 5m bucket)."""
    late, counts, seen = set(), {}, set()
    for items in parts:
        newest = None
        for item in items:
            if item.id in seen:
                continue
            seen.add(item.id)
            if item.published_at > NOW + FUTURE:
                continue
            if newest is not None and item.published_at < newest - LATENESS:
                late.add(item.id)
                continue
            newest = item.published_at if newest is None else max(newest, item.published_at)
            start = int(item.published_at.timestamp()) // 300 * 300
            counts[(item.topic, start)] = counts.get((item.topic, start), 0) + 1
    return late, counts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(news_raw(), OPS, st.integers(1, 3), st.booleans(), st.integers(1, 3), st.lists(st.integers(1, 9), min_size=1))
def test_late_only_if_late_on_arrival(parts, ops, members, keeps_metadata, scored_partitions, batch_sizes):
    group = Group(parts, members, keeps_metadata)
    for kind, a, b in ops:
        m = a % members
        if kind == "read":
            group.read(m, a, b)
        elif kind == "publish":
            group.publish(m)
        elif kind == "crash":
            group.crash(m)
        else:
            group.rebalance(b)
    group.drain()

    aggregator = Aggregator(parse_windows(WINDOWS), LATENESS, future=FUTURE, clock=lambda: NOW)
    state: dict[str, dict] = {}
    routed: dict[int, list] = {}
    for record in group.sent:
        routed.setdefault(zlib.crc32(record.key.encode()) % scored_partitions, []).append(record)
    late, final = set(), {}
    for q, records in routed.items():
        offsets, i, k = list(enumerate(records)), 0, 0
        while i < len(offsets):
            size = batch_sizes[k % len(batch_sizes)]
            applied = aggregator.apply(state, q, offsets[i:i + size])
            commit(state, applied, q)
            late |= {entry.item.id for entry in applied.late}
            for window in applied.windows:
                final[(window.topic, window.window, window.start)] = window.count
            i, k = i + size, k + 1

    want_late, want_counts = expected(parts)
    assert late == want_late
    got = {(topic, start): value["count"] for key, value in state.items() if not key.startswith("~")
           for topic, step, start in [key_parts(key)] if step == 300}
    assert got == want_counts
    # A window made final never changes after: no item that counts arrives after its window closed.
    for (topic, name, start), count in final.items():
        spec = aggregator.spec(name)
        assert aggregator.window_of(state, topic, spec, start, None).count == count, (topic, name, start)
