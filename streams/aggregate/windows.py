"""Pure event-time aggregation: per-topic fixed buckets, windows derived by summing them.

Nothing here touches Kafka or Faust; the aggregation agent (issue 5) calls these functions
once per micro-batch and stores ``Bucket.to_dict()`` values in a changelog-backed table
keyed by ``(topic, bucket start)``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from operator import itemgetter

from moodwire.records import LADDER, WATCHLIST_KEY, Evidence, ScoredNews, Strong, TopicWindow

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EVIDENCE_K = 5


# A bucket's ladder: per LADDER cutoff, (items scored below it, the EVIDENCE_K earliest of them
# as points), all tuples; buckets with no item below the first cutoff share this one value, so
# merging and encoding them costs an identity check. A bucket whose step no ``negative_count``
# rule names keeps no ladder: ``None`` (``Aggregator``'s ``ladder``), and every sum holding
# such a bucket says so (None), so a window is never counted short: its rule refuses it.
NO_STRONG: tuple = tuple((0, ()) for _ in LADDER)


def bucket_start(at: datetime, width: timedelta) -> datetime:
    """Start of the fixed bucket of ``width`` holding ``at`` (aligned to the Unix epoch)."""
    seconds = (at - EPOCH).total_seconds()
    step = width.total_seconds()
    return EPOCH + timedelta(seconds=math.floor(seconds / step) * step)


@dataclass
class Bucket:
    """Sums of one topic over one span: enough for mean, shares and a confidence interval."""

    count: int = 0
    total: float = 0.0
    sum_sq: float = 0.0
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    late: int = 0
    # (score, id, title, url, published_at ISO): lowest first / highest first; ids are unique,
    # so the later fields never take part in ordering
    most_negative: list[tuple] = field(default_factory=list)
    most_positive: list[tuple] = field(default_factory=list)
    strong: tuple | None = NO_STRONG  # see NO_STRONG; None: not kept

    def add(self, item: ScoredNews) -> None:
        self.add_many([item])

    def add_many(self, items: Iterable[ScoredNews], points: Mapping[str, tuple] | None = None) -> None:
        """``add`` for a micro-batch: the extremes are merged once, not once per item.
        ``points``: the items' evidence points by id, when the caller has them already."""
        new = []
        for item in items:
            score = item.score
            self.count += 1
            self.total += score
            self.sum_sq += score * score
            if item.sentiment == "negative":
                self.negative += 1
            elif item.sentiment == "positive":
                self.positive += 1
            else:
                self.neutral += 1
            new.append(points[item.id] if points is not None else point_of(item))
        # a re-delivered item is one point, not two (the set)
        self.most_negative = _lowest({*self.most_negative, *new})
        self.most_positive = _highest({*self.most_positive, *new})
        if self.strong is None:
            return
        low = [p for p in new if p[0] < LADDER[0]]
        if low:
            self.strong = tuple(_climbed(entry, [p for p in low if p[0] < cut]) for cut, entry in zip(LADDER, self.strong))

    @classmethod
    def total_of(cls, buckets: Iterable["Bucket"]) -> "Bucket":
        """The sum of many buckets (one merge of the extremes). The buckets are disjoint
        spans of one step, so no item is in two of them."""
        out = cls()
        negatives, positives = [], []
        strong = [[0, []] for _ in LADDER]
        kept = True
        for b in buckets:
            if b.strong is None:
                kept = False
            elif b.strong is not NO_STRONG:
                for acc, (n, first) in zip(strong, b.strong):
                    acc[0] += n
                    acc[1] += first
            out.count += b.count
            out.total += b.total
            out.sum_sq += b.sum_sq
            out.negative += b.negative
            out.neutral += b.neutral
            out.positive += b.positive
            out.late += b.late
            negatives += b.most_negative
            positives += b.most_positive
        out.most_negative = _lowest(negatives)
        out.most_positive = _highest(positives)
        out.strong = (None if not kept else tuple((n, _earliest(first)) for n, first in strong) if strong[0][0]
                      else NO_STRONG)
        return out

    def merged(self, other: "Bucket") -> "Bucket":
        """The sum of two buckets of disjoint spans (a new bucket; neither is changed). Cheap
        when both hold at most ``EVIDENCE_K`` extremes each: partial sums of consecutive
        buckets are combined this way (``streams.aggregate.fold.Aggregator.windows_of``)."""
        if other is EMPTY:
            return self
        if self is EMPTY:
            return other
        return Bucket(self.count + other.count, self.total + other.total, self.sum_sq + other.sum_sq,
                      self.negative + other.negative, self.neutral + other.neutral, self.positive + other.positive,
                      self.late + other.late, _lowest(self.most_negative + other.most_negative),
                      _highest(self.most_positive + other.most_positive),
                      _ladder_sum(self.strong, other.strong))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def std_error(self) -> float:
        """Standard error of the mean score (0 for fewer than two items)."""
        if self.count < 2:
            return 0.0
        variance = max(0.0, (self.sum_sq - self.count * self.mean ** 2) / (self.count - 1))
        return math.sqrt(variance / self.count)

    def to_dict(self) -> dict:
        return {"count": self.count, "total": self.total, "sum_sq": self.sum_sq, "negative": self.negative,
                "neutral": self.neutral, "positive": self.positive, "late": self.late,
                "most_negative": [list(p) for p in self.most_negative],
                "most_positive": [list(p) for p in self.most_positive],
                # the ladder up to its last cutoff with items ([] for none; null: not kept)
                "strong": None if self.strong is None else
                [[n, [list(p) for p in first]] for n, first in self.strong if n]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Bucket":
        return cls(data["count"], data["total"], data["sum_sq"], data["negative"], data["neutral"],
                   data["positive"], data.get("late", 0), [tuple(p) for p in data["most_negative"]],
                   [tuple(p) for p in data["most_positive"]],
                   # buckets stored before the ladder (Moodwire < 1.6) count nothing below it
                   _ladder_of(data.get("strong", ())))


EMPTY = Bucket()  # the sum of no bucket (never changed: ``merged`` returns the other side)


def _climbed(entry: tuple, below: list[tuple]) -> tuple:
    """One cutoff's (count, earliest) after adding the new points ``below`` it (a re-delivered
    item is one point: the set)."""
    if not below:
        return entry
    n, first = entry
    return n + len(below), _earliest({*first, *below})


def _ladder_sum(earlier: tuple, later: tuple) -> tuple:
    """The ladder of two buckets of disjoint spans (``merged``), ``earlier`` the earlier span."""
    if earlier is None or later is None:
        return None
    if later is NO_STRONG:
        return earlier
    if earlier is NO_STRONG:
        return later
    return tuple((a + b, _joined(x, y)) for (a, x), (b, y) in zip(earlier, later))


def _ladder_of(stored: list | None) -> tuple | None:
    """A ladder from its stored form (``Bucket.to_dict``: the cutoffs up to the last with items;
    None: not kept)."""
    if stored is None:
        return None
    if not stored or not stored[0][0]:
        return NO_STRONG
    entries = [(n, tuple(tuple(p) for p in first)) for n, first in stored]
    return tuple(entries) + NO_STRONG[len(entries):]


def _lowest(points) -> list[tuple]:
    """The ``EVIDENCE_K`` lowest points, lowest first; ties by id (arrival order plays no part)."""
    if len(points) <= _SMALL:
        return sorted(points)[:EVIDENCE_K]
    return heapq.nsmallest(EVIDENCE_K, points)


def _highest(points) -> list[tuple]:
    """The ``EVIDENCE_K`` highest points, highest first; ties by id (the lower first, as in
    ``_lowest``). Few points (two buckets' extremes merged, a batch's new items): sorted by id,
    then by score, highest first — a stable sort keeps equal scores in id order; both keys
    are C-level. Many points: the candidates are found by score alone (no Python-level key per
    point); every point scoring at least the
    ``EVIDENCE_K``-th highest is kept, so ties at the cut are decided by id."""
    if len(points) <= _SMALL:
        chosen = sorted(points, key=_id)
        chosen.sort(key=_score, reverse=True)
        return chosen[:EVIDENCE_K]
    cut = heapq.nlargest(EVIDENCE_K, points, key=_score)[-1][0]
    chosen = [p for p in points if p[0] >= cut]
    chosen.sort(key=_descending)
    return chosen[:EVIDENCE_K]


def _earliest(points) -> tuple:
    """The ``EVIDENCE_K`` earliest points, by publish time then id (arrival order plays no part;
    the ISO times are all UTC in one format, so they compare as text)."""
    return tuple(sorted(points, key=_time_then_id)[:EVIDENCE_K])


def _joined(earlier: tuple, later: tuple) -> tuple:
    """``_earliest`` of two buckets' earliest points. Windows are summed from consecutive
    buckets, earlier side first, so the lists usually follow each other in time: then the
    join is a slice, not a sort (the cost of the ladder in every window merge)."""
    if not later:
        return earlier
    if not earlier:
        return later
    if _time_then_id(earlier[-1]) <= _time_then_id(later[0]):
        return earlier if len(earlier) >= EVIDENCE_K else (earlier + later)[:EVIDENCE_K]
    return _earliest(earlier + later)


def _time_then_id(point: tuple) -> tuple:
    return point[4], point[1]


# Up to this many points a full sort (C) is cheaper than heapq's Python-level selection; far
# beyond it the heaps are.
_SMALL = 48
_score = itemgetter(0)
_id = itemgetter(1)


def _descending(point: tuple) -> tuple:
    return -point[0], point[1]


def point_of(item: ScoredNews) -> tuple:
    """An item as evidence: (score, id, title, url, published_at ISO); lists compare by score
    then id (ids are unique, so the later fields never take part)."""
    return (item.score, item.id, item.title[:300], item.url, item.published_at.isoformat())


def to_window(topic: str, name: str, start: datetime, end: datetime, bucket: Bucket, final: bool) -> TopicWindow:
    """The window record of ``bucket``'s sums. Built without re-validation (``Record.trusted``):
    every field is computed here from validated items, in range by construction, and validating
    the evidence entries of every record would cost more than computing it
    (tests/streams/test_windows.py checks the records against a validated copy)."""
    n = bucket.count
    return TopicWindow.trusted(
        topic=topic, window=name, start=start, end=end, count=n, mean_score=max(-1.0, min(1.0, bucket.mean)),
        sum_sq=bucket.sum_sq, negative_share=bucket.negative / n if n else 0.0,
        neutral_share=bucket.neutral / n if n else 0.0, positive_share=bucket.positive / n if n else 0.0,
        late_count=bucket.late, most_negative=[p[1] for p in bucket.most_negative],
        most_positive=[p[1] for p in bucket.most_positive],
        evidence=list(_distinct_evidence(tuple(bucket.most_negative), tuple(bucket.most_positive))), final=final,
        kind="watchlist" if topic.startswith(WATCHLIST_KEY) else "topic",
        strong=None if bucket.strong is None else [] if bucket.strong is NO_STRONG else
        [_strong(cut, n, first) for cut, (n, first) in zip(LADDER, bucket.strong) if n])


@lru_cache(maxsize=16_384)  # overlapping windows share most of their earliest headlines
def _strong(cut: float, n: int, first: tuple) -> Strong:
    return Strong.trusted(below=cut, count=n, first=[_evidence(p) for p in first])


@lru_cache(maxsize=16_384)  # overlapping windows and a window emitted again share their extremes
def _distinct_evidence(negatives: tuple, positives: tuple) -> tuple[Evidence, ...]:
    """The window's evidence, most negative first, then most positive: each item once (in a
    window of few items one item can be among both extremes)."""
    seen: set[str] = set()
    out = []
    for point in (*negatives, *positives):
        if len(point) >= 5 and point[1] not in seen:
            seen.add(point[1])
            out.append(_evidence(point))
    return tuple(out)


@lru_cache(maxsize=16_384)  # the same items are the evidence of many overlapping windows
def _evidence(point: tuple) -> Evidence:
    score, item, title, url, published = point
    return Evidence.trusted(id=item, title=title, url=url, score=score, published_at=datetime.fromisoformat(published))
