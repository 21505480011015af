"""Exact event-time aggregation of one source partition's micro-batch (pure; no Faust here).

State lives in a key/value table (a changelog-backed Faust table in the worker, a dict in the
back-test and the tests), always written for the partition the records came from:

- one **bucket** per (key, step, bucket start): the sums of ``windows.Bucket`` plus the
  highest source offset folded into it (``offset``);
- one **marker** per source partition: the highest offset fully processed and the maximum
  event time seen up to it (from which the watermark follows).

Folding is idempotent by offset (invariant I1 of docs/aggregate-worker.md): a record at or
below the marker is skipped, a record whose bucket already holds its offset is not added again,
and the watermark is recomputed record by record in offset order, so lateness decisions do not
depend on batch boundaries. Replaying any suffix of a partition leaves the same state.

What real news brings is contained here (docs/aggregate-worker.md, "Input policies"): an item
id counts once per window key however often it arrives (``seen``); a late item is dead-lettered
and changes no bucket; an item dated more than ``future`` after the clock is dead-lettered and
moves no watermark; and the windows made final are found from the buckets held, so nothing is
allocated in proportion to a span of time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from copy import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from operator import itemgetter

from moodwire.overlay import Overlay
from moodwire.records import ScoredNews, TopicWindow
from moodwire.spans import WindowSpec
from streams.aggregate.index import BucketIndex
from streams.aggregate.inputs import Inputs
from streams.aggregate.keys import MARKER_PREFIX, key_parts, marker_key, state_key
from streams.aggregate.seen import COUNTED, FUTURE, LATE, SeenIds, dedup_key, is_seen_key, seen_key
from streams.aggregate.windows import EMPTY, EPOCH, Bucket, bucket_start, point_of, to_window

@lru_cache(maxsize=65_536)  # window starts recur batch after batch (a 24 h window is touched for a day)
def _instant(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass
class Late:
    offset: int
    item: ScoredNews
    watermark: datetime

    @property
    def reason(self) -> str:
        return (f"late: published_at {self.item.published_at.isoformat()} is before the watermark "
                f"{self.watermark.isoformat()} of its partition (the newest publish time minus the allowed "
                "lateness); it changes no window")


@dataclass
class Future:
    offset: int
    item: ScoredNews
    clock: datetime
    tolerance: timedelta

    @property
    def reason(self) -> str:
        return (f"future: published_at {self.item.published_at.isoformat()} is more than {self.tolerance} after "
                f"the stage's clock {self.clock.isoformat()}; fix the source's dates (a broken pubDate?) or raise "
                "MOODWIRE_AGGREGATE_FUTURE_TOLERANCE")


@dataclass
class Misrouted:
    offset: int
    item: ScoredNews
    home: int

    @property
    def reason(self) -> str:
        return (f"misrouted: key {self.item.key!r} is aggregated on partition {self.home}; news.scored "
                "records must be keyed by their topic or watchlist key (moodwire classify does this)")


@dataclass
class BatchResult:
    """What one micro-batch changes. ``bucket_writes``, ``windows`` and ``late`` must be durable
    before ``marker`` is (invariant I5). ``touched`` windows are computed and emitted later,
    throttled (``Aggregator.windows_of``)."""

    partition: int
    bucket_writes: dict[str, dict | None] = field(default_factory=dict)  # None deletes
    windows: list[TopicWindow] = field(default_factory=list)  # windows that became final
    touched: set[tuple[str, str, datetime]] = field(default_factory=set)  # (topic, window, start) changed
    late: list[Late] = field(default_factory=list)
    future: list[Future] = field(default_factory=list)
    misrouted: list[Misrouted] = field(default_factory=list)
    marker: dict | None = None
    skipped: int = 0
    duplicates: int = 0  # records whose (key, item id) an earlier offset brought


class Aggregator:
    """Folds micro-batches of one worker's partitions into buckets and windows."""

    def __init__(self, windows: Iterable[WindowSpec], lateness: timedelta, retention: timedelta | None = None,
                 future: timedelta | None = None, clock: Callable[[], datetime] | None = None,
                 ladder: Iterable[str] | None = None):
        """``future``: how far after ``clock()`` a publish time may lie; later items are
        dead-lettered (None: no limit, for tests of the fold alone). ``ladder``: the names of
        the windows whose items below each score cutoff are counted (``alerts.rules.ladder_windows``:
        those a ``negative_count`` rule judges); the buckets of their steps keep the count, the
        others not (None: every window). The count is most of a bucket's cost."""
        self.windows = list(windows)
        names = {w.name for w in self.windows} if ladder is None else set(ladder)
        self.ladder_steps = {int(w.step.total_seconds()) for w in self.windows if w.name in names}
        self.future, self.clock = future, clock
        self.lateness = lateness
        self.steps = sorted({w.step for w in self.windows})
        self.step_seconds = [int(step.total_seconds()) for step in self.steps]
        longest = max(w.span for w in self.windows)
        self.retention = retention if retention is not None else longest
        self.horizon = longest + self.retention  # buckets older than watermark − horizon are dropped
        self.held = BucketIndex()
        self.seen = SeenIds(min(self.step_seconds))
        self.by_name = {spec.name: spec for spec in self.windows}
        self.covering: dict[int, list[tuple[str, int]]] = {  # step (s) → (window name, steps per window)
            step: [(w.name, w.span // w.step) for w in self.windows if int(w.step.total_seconds()) == step]
            for step in self.step_seconds}
        self.clock_watermark: dict[int, datetime] = {}  # heartbeat advances (not persisted)

    # ------------------------------------------------------------------ state index
    def adopt(self, partition: int, keys: Iterable[str], state: Mapping[str, dict]) -> None:
        """Remember the bucket keys and seen ids a (recovered) partition holds."""
        for key in keys:
            if is_seen_key(key):
                self.seen.adopt(partition, key, state[key])
            elif not key.startswith(MARKER_PREFIX):
                self.held.remember(partition, key)

    def forget_all(self) -> None:
        """Forget every partition (before adopting what a recovered table holds)."""
        self.held = BucketIndex()
        self.seen = SeenIds(self.seen.slot_s)
        self.clock_watermark.clear()

    def event_watermark(self, marker: Mapping | None) -> datetime | None:
        """A marker's event-time watermark (I8): stored since markers carry the inputs; before,
        the newest publish time minus the lateness."""
        if not marker:
            return None
        if "inputs" in marker:
            return _time(marker.get("watermark"))
        return None if marker.get("max_event") is None else _time(marker["max_event"]) - self.lateness

    def watermark(self, state: Mapping[str, dict], partition: int) -> datetime | None:
        event_wm = self.event_watermark(state.get(marker_key(partition)))
        clock_wm = self.clock_watermark.get(partition)
        candidates = [w for w in (event_wm, clock_wm) if w is not None]
        return max(candidates) if candidates else None

    # ------------------------------------------------------------------ the batch
    def apply(self, state: Mapping[str, dict], partition: int,
              records: Iterable[tuple[int, ScoredNews]]) -> BatchResult:
        result = BatchResult(partition)
        marker = dict(state.get(marker_key(partition)) or {"offset": -1, "max_event": None})
        done = marker["offset"]
        max_event = _time(marker["max_event"])
        inputs = Inputs(marker.get("inputs"))
        old_event_wm = self.event_watermark(marker)
        old_wm = self.watermark(state, partition)
        per_key: dict[str, list[tuple[int, ScoredNews]]] = {}
        points: dict[str, tuple] = {}
        seen_slots: set[int] = set()
        last = done
        now = None if self.future is None else self.clock()
        latest_ok = None if now is None else now + self.future  # later publish times are "future"
        for offset, item in sorted(records, key=itemgetter(0)):
            if offset <= last:  # processed before (marker), or delivered twice in this batch
                result.skipped += 1
                continue
            last = offset
            home = item.key  # the topic, or watchlist:NAME for an item's watchlist copy
            dkey = dedup_key(home, item.id)
            before = self.seen.lookup(partition, dkey)
            if before is not None and before[0] != offset:
                result.duplicates += 1
                continue
            # Lateness follows event time only: a heartbeat may close an idle partition's windows
            # early, but an item that then arrives within the allowed lateness still counts (its
            # window is emitted again, final, with the item in it).
            inputs.see(item)
            wm_now = None if max_event is None else max_event - self.lateness
            if item.input_time is not None:  # judged at the input (I8) ...
                wm_now = item.input_time - self.lateness
                if old_event_wm is not None and old_event_wm - self.retention > wm_now:
                    wm_now = old_event_wm - self.retention  # ... within the buckets this partition keeps
            if latest_ok is not None and (item.published_at > latest_ok if before is None else before[1] == FUTURE):
                result.future.append(Future(offset, item, now, self.future))
                at = wm_now or now
                seen_slots.add(self.seen.remember(partition, dkey, offset, FUTURE, at.timestamp()))
                continue
            if wm_now is not None and item.published_at < wm_now:
                result.late.append(Late(offset, item, wm_now))
                seen_slots.add(self.seen.remember(partition, dkey, offset, LATE, wm_now.timestamp()))
                continue
            at = item.published_at.timestamp()
            seen_slots.add(self.seen.remember(partition, dkey, offset, COUNTED, at))
            points[item.id] = point_of(item)  # once, not once per step
            if max_event is None or item.published_at > max_event:
                max_event = item.published_at
            for step_s in self.step_seconds:
                per_key.setdefault(state_key(home, step_s, int(at // step_s) * step_s), []).append((offset, item))

        for key, entries in list(per_key.items()):
            stored = state.get(key)
            if stored and stored.get("partition", partition) != partition:
                # news.scored must be keyed by topic: one topic's buckets live with one partition.
                result.misrouted += [Misrouted(o, i, stored["partition"]) for o, i in entries
                                     if o not in {m.offset for m in result.misrouted}]
                continue
            applied = stored["offset"] if stored else -1
            fresh = [(o, i) for o, i in entries if o > applied]
            if not fresh:
                continue
            held = self.held.bucket(state, key) if stored else None
            bucket = copy(held) if held is not None else Bucket.from_dict(stored) if stored else Bucket()
            if bucket.strong is not None and key_parts(key)[1] not in self.ladder_steps:
                bucket.strong = None  # (a bucket that lacks it never gains it: it would count short)
            bucket.add_many((item for _, item in fresh), points)  # (replaces its lists: the copy is enough)
            written = result.bucket_writes[key] = {**bucket.to_dict(), "offset": fresh[-1][0], "partition": partition}
            self.held.remember(partition, key)
            self.held.parsed(key, written, bucket)
        for slot in sorted(seen_slots):
            result.bucket_writes[seen_key(partition, slot)] = self.seen.entry(partition, slot)

        event_wm = inputs.watermark(max_event, self.lateness)
        if old_event_wm is not None and (event_wm is None or event_wm < old_event_wm):
            event_wm = old_event_wm  # a watermark never goes back
        marker = {"offset": last, "max_event": None if max_event is None else max_event.isoformat()}
        if inputs.held:
            marker["inputs"] = inputs.held
        if inputs.held and event_wm is not None:
            marker["watermark"] = event_wm.isoformat()
        overlay = Overlay(state, {**result.bucket_writes, marker_key(partition): marker})  # as it will be
        new_wm = self.watermark(overlay, partition)
        result.windows = self._newly_final(overlay, partition, old_wm, new_wm, set())
        final_now = {(w.topic, w.window, w.start) for w in result.windows}
        result.touched = self._touched(result.bucket_writes) - final_now  # sent already, with these writes
        if new_wm is not None:
            # A headline that is not late can land in a window already final (closed by the idle
            # heartbeat during an outage, or its news.raw partition idle): that window is sent
            # again, final, with this batch's effects (I5), not left to the throttled emitter,
            # whose pending windows a crash forgets once the marker covers the batch.
            closed = sorted(w for w in result.touched if w[2] + self.by_name[w[1]].span <= new_wm)
            result.windows += [self.window_of(overlay, topic, self.by_name[name], start, new_wm)
                               for topic, name, start in closed]
            result.touched.difference_update(closed)
        # Retention follows event time only: a heartbeat's wall-clock watermark must not delete
        # the buckets of news that is being replayed or is still arriving.
        if event_wm is not None:
            result.bucket_writes.update(self.held.expire(partition, event_wm - self.horizon))
            result.bucket_writes.update(self.seen.expire(partition, (event_wm - self.horizon).timestamp()))
        result.marker = marker
        return result

    def heartbeat(self, state: Mapping[str, dict], partition: int, to: datetime) -> list[TopicWindow]:
        """Advance an idle partition's watermark to ``to``; returns the windows that became final."""
        old_wm = self.watermark(state, partition)
        if old_wm is not None and to <= old_wm:
            return []
        self.clock_watermark[partition] = to
        return self._newly_final(state, partition, old_wm, to, set())

    # ------------------------------------------------------------------ windows
    def window_of(self, state: Mapping[str, dict], topic: str, spec: WindowSpec, start: datetime,
                  watermark: datetime | None) -> TopicWindow:
        return self.windows_of(state, topic, spec, [start], watermark)[0]

    def windows_of(self, state: Mapping[str, dict], topic: str, spec: WindowSpec, starts: Iterable[datetime],
                   watermark: datetime | None) -> list[TopicWindow]:
        """The records of ``topic``'s windows of ``spec`` starting at ``starts``, in that order.

        Sliding windows share most of their buckets, so each window is summed from two partial
        sums instead of its ``k`` buckets (``k`` = span / step): the step buckets are cut into
        blocks of ``k``, aligned to the epoch; a window is either one whole block or the suffix
        of one block (its first bucket to the block's end) plus the prefix of the next (the
        block's start to its last bucket). Suffixes and prefixes are built bucket by bucket and
        shared by the windows asked for together: a run of consecutive windows costs about
        three merges each, not ``k`` bucket sums and a top-k of ``k`` × 2 × ``EVIDENCE_K``
        points (a 24h/1h window: 24 buckets, 240 points). The blocks do not depend on which
        windows are asked for together, so a window's sums are always added in the same order
        (the same float result in a replay as in an uninterrupted run)."""
        step_s = int(spec.step.total_seconds())
        k = spec.span // spec.step
        suffix: dict[int, Bucket] = {}
        prefix: dict[int, Bucket] = {}

        def bucket(i: int) -> Bucket:
            found = self.held.bucket(state, state_key(topic, step_s, i * step_s))
            return EMPTY if found is None else found

        def suffix_of(i: int) -> Bucket:  # buckets i … end of i's block
            end = (i // k + 1) * k
            j = i
            while j < end and j not in suffix:
                j += 1
            acc = suffix[j] if j < end else EMPTY  # (suffix[end] belongs to the next block)
            for at in range(j - 1, i - 1, -1):
                acc = bucket(at).merged(acc)
                suffix[at] = acc
            return acc

        def prefix_of(i: int) -> Bucket:  # buckets start of i's block … i
            begin = (i // k) * k
            j = i
            while j >= begin and j not in prefix:
                j -= 1
            acc = prefix[j] if j >= begin else EMPTY
            for at in range(j + 1, i + 1):
                acc = acc.merged(bucket(at))
                prefix[at] = acc
            return acc

        out = []
        for start in starts:
            first = int((start - EPOCH).total_seconds()) // step_s
            total = suffix_of(first) if first % k == 0 else suffix_of(first).merged(prefix_of(first + k - 1))
            end = start + spec.span
            out.append(to_window(topic, spec.name, start, end, total,
                                 final=watermark is not None and end <= watermark))
        return out

    def spec(self, name: str) -> WindowSpec:
        return self.by_name[name]

    def _touched(self, writes) -> set[tuple[str, str, datetime]]:
        """The windows (topic, name, start) holding a written bucket: found in whole seconds
        (a batch touches each window through many of its buckets), each made a time once."""
        seconds = set()
        for key in writes:
            if key.startswith("~"):  # a seen-ids entry, not a bucket
                continue
            topic, step_s, start_s = key_parts(key)
            for name, k in self.covering[step_s]:
                seconds.update((topic, name, start_s - j * step_s) for j in range(k))
        return {(topic, name, _instant(at)) for topic, name, at in seconds}

    def _newly_final(self, state, partition, old_wm, new_wm, already) -> list[TopicWindow]:
        """Windows holding data whose end lies in (old_wm, new_wm], for the topics this
        partition holds: enumerated from the aligned window ends in that interval, or, when the
        interval holds more window ends than the topic has buckets (a long quiet spell, a
        partition's first jump), from the buckets held — never in proportion to the span."""
        if new_wm is None or (old_wm is not None and new_wm <= old_wm):
            return []
        topics = self.held.topics.get(partition)
        if not topics:
            return []
        out = []
        for topic, (first, last) in topics.items():
            lower = old_wm if old_wm is not None else first
            for spec in self.windows:
                starts = self._final_starts(partition, topic, spec, max(lower, first), lower, new_wm, last)
                starts = [s for s in starts if (topic, spec.name, s) not in already]
                out += [w for w in self.windows_of(state, topic, spec, starts, new_wm) if w.count]
        return sorted(out, key=lambda w: (w.topic, w.window, w.start))

    def _final_starts(self, partition, topic, spec, begin, lower, new_wm, last) -> list[datetime]:
        """Starts of ``spec``'s windows [s, s + span) with s + span in (lower, new_wm] that can
        hold one of ``topic``'s buckets (begin: its first bucket, or the old watermark)."""
        step_s, span_s = int(spec.step.total_seconds()), int(spec.span.total_seconds())
        held = self.held.starts.get((partition, topic, step_s), ())
        lower_s, new_s = (lower - EPOCH).total_seconds(), (new_wm - EPOCH).total_seconds()
        by_time = (min(new_wm, last + spec.span) - begin) / spec.step
        if by_time <= len(held) * (span_s // step_s):
            start = bucket_start(begin - spec.span, spec.step)
            while start + spec.span <= lower or start + spec.span <= begin:
                start += spec.step
            starts = []
            while start + spec.span <= new_wm and start <= last:
                starts.append(start)
                start += spec.step
            return starts
        found = {b - j * step_s for b in held if lower_s - span_s < b + step_s and b <= new_s
                 for j in range(span_s // step_s)}
        return [_instant(s) for s in sorted(found) if lower_s < s + span_s <= new_s]
