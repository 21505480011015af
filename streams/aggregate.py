"""Exact event-time aggregation of one source partition's micro-batch (pure; no Faust here).

State lives in a key/value table (a changelog-backed Faust table in production, a dict in
tests), always written for the partition the records came from:

- one **bucket** per (topic, step, bucket start): the sums of ``windows.Bucket`` plus the
  highest source offset folded into it (``offset``);
- one **marker** per source partition: the highest offset fully processed and the maximum
  event time seen up to it (from which the watermark follows).

Why it is exact after a crash: the Faust agent writes the bucket changes, then the window
records, then the marker, each awaited, before the source offsets may be committed. A
replay after SIGKILL re-reads records the marker has not covered; a record whose bucket
already holds its offset is not added again, and the watermark is recomputed record by
record in offset order, so lateness decisions do not depend on batch boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from moodwire.records import ScoredNews, TopicWindow
from moodwire.spans import WindowSpec, parse_windows  # noqa: F401  (re-exported for the app)
from streams.windows import EPOCH, Bucket, bucket_start, to_window

MARKER_PREFIX = "~partition/"
SEP = "\x1f"


def bucket_key(topic: str, step: timedelta, start: datetime) -> str:
    return SEP.join((topic, str(int(step.total_seconds())), str(int((start - EPOCH).total_seconds()))))


def parse_bucket_key(key: str) -> tuple[str, timedelta, datetime]:
    topic, step, start = key.split(SEP)
    return topic, timedelta(seconds=int(step)), EPOCH + timedelta(seconds=int(start))


def marker_key(partition: int) -> str:
    return f"{MARKER_PREFIX}{partition}"


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
                f"{self.watermark.isoformat()} of its partition; counted in late_count, not in the window")


@dataclass
class BatchResult:
    """What one micro-batch changes. Write ``bucket_writes`` first, then send ``windows``
    and ``late``, then write ``marker`` — each acknowledged before the next. ``touched``
    windows are computed and emitted later, throttled (``Aggregator.window_of``)."""

    partition: int
    bucket_writes: dict[str, dict | None] = field(default_factory=dict)  # None deletes
    windows: list[TopicWindow] = field(default_factory=list)  # windows that became final
    touched: set[tuple[str, str, datetime]] = field(default_factory=set)  # (topic, window, start) changed
    late: list[Late] = field(default_factory=list)
    marker: dict | None = None
    applied: int = 0
    skipped: int = 0


class Aggregator:
    """Folds micro-batches of one worker's partitions into buckets and windows."""

    def __init__(self, windows: Iterable[WindowSpec], lateness: timedelta, retention: timedelta | None = None):
        self.windows = list(windows)
        self.lateness = lateness
        self.steps = sorted({w.step for w in self.windows})
        longest = max(w.span for w in self.windows)
        self.retention = retention if retention is not None else longest
        self.horizon = longest + self.retention  # buckets older than watermark − horizon are dropped
        self.index: dict[int, set[str]] = {}      # partition → bucket keys held for it
        self.clock_watermark: dict[int, datetime] = {}  # heartbeat advances (not persisted)

    # ------------------------------------------------------------------ state index
    def adopt(self, partition: int, keys: Iterable[str]) -> None:
        """Remember the bucket keys a (recovered) partition holds."""
        self.index.setdefault(partition, set()).update(k for k in keys if not k.startswith(MARKER_PREFIX))

    def forget(self, partition: int) -> None:
        self.index.pop(partition, None)
        self.clock_watermark.pop(partition, None)

    def watermark(self, state: Mapping[str, dict], partition: int) -> datetime | None:
        marker = state.get(marker_key(partition))
        event_wm = None if not marker or marker.get("max_event") is None else _time(marker["max_event"]) - self.lateness
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
        old_wm = self.watermark(state, partition)
        per_key: dict[str, list[tuple[int, ScoredNews, bool]]] = {}
        last = done
        processed = 0
        for offset, item in sorted(records, key=lambda r: r[0]):
            if offset <= done:
                result.skipped += 1
                continue
            # Lateness follows event time only: a heartbeat may close an idle partition's windows
            # early, but an item that then arrives within the allowed lateness still counts (its
            # window is emitted again, final, with the item in it).
            wm_now = None if max_event is None else max_event - self.lateness
            late = wm_now is not None and item.published_at < wm_now
            if late:
                result.late.append(Late(offset, item, wm_now))
            elif max_event is None or item.published_at > max_event:
                max_event = item.published_at
            for step in self.steps:
                key = bucket_key(item.topic, step, bucket_start(item.published_at, step))
                per_key.setdefault(key, []).append((offset, item, late))
            last = max(last, offset)
            processed += 1

        already_late: set[int] = set()
        for key, entries in per_key.items():
            stored = state.get(key)
            bucket = Bucket.from_dict(stored) if stored else Bucket()
            applied = stored["offset"] if stored else -1
            fresh = [(o, i, late) for o, i, late in entries if o > applied]
            if not fresh:
                already_late.update(o for o, _, late in entries if late)
                continue
            for _, item, late in fresh:
                if late:
                    bucket.late += 1
                else:
                    bucket.add(item)
            result.bucket_writes[key] = {**bucket.to_dict(), "offset": max(o for o, _, _ in fresh),
                                         "partition": partition}
            self.index.setdefault(partition, set()).add(key)
        # A late record whose every bucket already counted it was dead-lettered before the crash.
        result.late = [l for l in result.late if l.offset not in already_late]
        result.applied = processed

        marker = {"offset": last, "max_event": None if max_event is None else max_event.isoformat()}
        overlay = _Overlay(state, result.bucket_writes, marker_key(partition), marker)
        new_wm = self.watermark(overlay, partition)
        result.touched = self._touched(result.bucket_writes)
        result.windows = self._newly_final(overlay, partition, old_wm, new_wm, set())
        result.bucket_writes.update(self._expired(partition, new_wm))
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
        total = Bucket()
        at = start
        while at < start + spec.span:
            stored = state.get(bucket_key(topic, spec.step, at))
            if stored:
                total = total.merge(Bucket.from_dict(stored))
            at += spec.step
        end = start + spec.span
        return to_window(topic, spec.name, start, end, total, final=watermark is not None and end <= watermark)

    def spec(self, name: str) -> WindowSpec:
        return next(s for s in self.windows if s.name == name)

    def _touched(self, writes) -> set[tuple[str, str, datetime]]:
        touched = set()
        for key in writes:
            topic, step, start = parse_bucket_key(key)
            for spec in self.windows:
                if spec.step == step:
                    touched.update((topic, spec.name, s) for s in spec.starts_covering(start))
        return touched

    def _newly_final(self, state, partition, old_wm, new_wm, already) -> list[TopicWindow]:
        if new_wm is None or (old_wm is not None and new_wm <= old_wm):
            return []
        out: dict[tuple[str, str, datetime], tuple[str, WindowSpec, datetime]] = {}
        for key in self.index.get(partition, ()):
            topic, step, start = parse_bucket_key(key)
            for spec in self.windows:
                if spec.step != step:
                    continue
                for s in spec.starts_covering(start):
                    end = s + spec.span
                    if (old_wm is None or end > old_wm) and end <= new_wm and (topic, spec.name, s) not in already:
                        out[(topic, spec.name, s)] = (topic, spec, s)
        return [self.window_of(state, t, spec, s, new_wm) for (t, _, s), (_, spec, _) in sorted(out.items())]

    def _expired(self, partition: int, watermark: datetime | None) -> dict[str, None]:
        if watermark is None:
            return {}
        cutoff = watermark - self.horizon
        gone = {}
        for key in list(self.index.get(partition, ())):
            _, step, start = parse_bucket_key(key)
            if start + step <= cutoff:
                gone[key] = None
                self.index[partition].discard(key)
        return gone


class _Overlay(Mapping):
    """The state as it will be once a batch's writes land."""

    def __init__(self, base: Mapping, writes: Mapping, marker_key: str, marker: dict):
        self.base, self.writes, self.marker_key, self.marker = base, writes, marker_key, marker

    def __getitem__(self, key):
        if key == self.marker_key:
            return self.marker
        if key in self.writes:
            if self.writes[key] is None:
                raise KeyError(key)
            return self.writes[key]
        return self.base[key]

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self):
        return iter({*self.base, *self.writes, self.marker_key})

    def __len__(self):
        return len(set(self))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
