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

from moodwire.records import Evidence, ScoredNews, TopicWindow

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EVIDENCE_K = 5


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

    def add(self, item: ScoredNews) -> None:
        self.count += 1
        self.total += item.score
        self.sum_sq += item.score * item.score
        setattr(self, item.sentiment, getattr(self, item.sentiment) + 1)
        point = _point(item)
        self._keep_extremes([point], [point])

    def add_many(self, items: Iterable[ScoredNews]) -> None:
        """``add`` for a micro-batch: the extremes are merged once, not once per item."""
        points = []
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
            points.append(_point(item))
        self._keep_extremes(points, points)

    @classmethod
    def total_of(cls, buckets: Iterable["Bucket"]) -> "Bucket":
        """The sum of many buckets (one merge of the extremes)."""
        out = cls()
        negatives, positives = [], []
        for b in buckets:
            out.count += b.count
            out.total += b.total
            out.sum_sq += b.sum_sq
            out.negative += b.negative
            out.neutral += b.neutral
            out.positive += b.positive
            out.late += b.late
            negatives.extend(b.most_negative)
            positives.extend(b.most_positive)
        out._keep_extremes(negatives, positives)
        return out

    def _keep_extremes(self, negatives: Iterable[tuple[float, str]], positives: Iterable[tuple[float, str]]) -> None:
        # Ties are broken by id so the result does not depend on arrival order.
        self.most_negative = heapq.nsmallest(EVIDENCE_K, {*self.most_negative, *map(tuple, negatives)})
        self.most_positive = sorted(heapq.nlargest(EVIDENCE_K, {*self.most_positive, *map(tuple, positives)},
                                                   key=lambda p: (p[0], p[1])), key=lambda p: (-p[0], p[1]))

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
                "most_positive": [list(p) for p in self.most_positive]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Bucket":
        return cls(data["count"], data["total"], data["sum_sq"], data["negative"], data["neutral"],
                   data["positive"], data.get("late", 0), [tuple(p) for p in data["most_negative"]],
                   [tuple(p) for p in data["most_positive"]])


def _point(item: ScoredNews) -> tuple:
    return (item.score, item.id, item.title[:300], item.url, item.published_at.isoformat())


def to_window(topic: str, name: str, start: datetime, end: datetime, bucket: Bucket, final: bool) -> TopicWindow:
    n = bucket.count
    return TopicWindow(
        topic=topic, window=name, start=start, end=end, count=n, mean_score=max(-1.0, min(1.0, bucket.mean)),
        sum_sq=bucket.sum_sq, negative_share=bucket.negative / n if n else 0.0,
        neutral_share=bucket.neutral / n if n else 0.0, positive_share=bucket.positive / n if n else 0.0,
        late_count=bucket.late, most_negative=[p[1] for p in bucket.most_negative],
        most_positive=[p[1] for p in bucket.most_positive],
        evidence=[Evidence(id=p[1], title=p[2], url=p[3], score=p[0], published_at=p[4])
                  for p in (*bucket.most_negative, *bucket.most_positive) if len(p) >= 5],
        final=final)
