from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moodwire.records import ScoredNews, TopicWindow, decode, item_id
from moodwire.spans import parse_span
from streams.aggregate.windows import EMPTY, EVIDENCE_K, NO_STRONG, Bucket, _highest, _lowest, bucket_start, point_of, to_window

T0 = datetime(2026, 11, 18, 13, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def scored(i: int, topic: str, minute: float, score: float) -> ScoredNews:
    neg, pos = max(0.0, -score), max(0.0, score)
    sentiment = "negative" if score < -0.2 else "positive" if score > 0.2 else "neutral"
    title = f"item {i}"
    at = T0 + timedelta(minutes=minute)
    return ScoredNews(id=item_id(None, "t", title), source="t", title=title, published_at=at, fetched_at=at,
                      topic=topic, topic_confidence=0.9, sentiment=sentiment,
                      probs={"negative": neg, "neutral": 1 - neg - pos, "positive": pos}, score=score,
                      model="m@1", classified_at=at)


def test_parse_span():
    assert parse_span("5m") == timedelta(minutes=5) and parse_span("24h") == timedelta(days=1)
    for bad in ("5", "m", "0m", "-5m", "5w", "1.5h"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_span(bad)


def test_bucket_start_aligns_to_the_width():
    assert bucket_start(T0 + timedelta(seconds=59.9), MIN) == T0
    assert bucket_start(T0 + timedelta(minutes=7, seconds=1), timedelta(minutes=5)) == T0 + timedelta(minutes=5)


def test_windows_match_an_independent_pandas_computation():
    rng = random.Random(7)
    items = [scored(i, rng.choice(["Financials", "Macro", "Energy | Oil"]), rng.uniform(0, 120),
                    round(rng.uniform(-1, 1), 3)) for i in range(500)]
    rng.shuffle(items)  # arrival order differs from event order
    batches = [items[i:i + 37] for i in range(0, len(items), 37)]
    table: dict[tuple[str, datetime], Bucket] = {}
    for batch in batches:  # as the agent does: one table update per key per micro-batch
        by_key: dict[tuple[str, datetime], list[ScoredNews]] = {}
        for item in batch:
            by_key.setdefault((item.topic, bucket_start(item.published_at, MIN)), []).append(item)
        for key, group in by_key.items():
            table.setdefault(key, Bucket()).add_many(group)

    frame = pd.DataFrame([{"topic": i.topic, "when": i.published_at, "score": i.score, "sentiment": i.sentiment,
                           "id": i.id} for i in items])
    start, end = T0 + timedelta(minutes=60), T0 + timedelta(minutes=65)
    for topic in frame.topic.unique():
        parts = [b for (t, at), b in table.items() if t == topic and start <= at < end]
        w = to_window(topic, "5m", start, end, Bucket.total_of(parts), final=True)
        rows = frame[(frame.topic == topic) & (frame.when >= start) & (frame.when < end)]
        assert w.count == len(rows)
        assert w.mean_score == pytest.approx(rows.score.mean())
        assert w.sum_sq == pytest.approx((rows.score ** 2).sum())
        assert w.negative_share == pytest.approx((rows.sentiment == "negative").mean())
        assert w.positive_share == pytest.approx((rows.sentiment == "positive").mean())
        expected_neg = list(rows.sort_values(["score", "id"]).id[:5])
        assert w.most_negative == expected_neg
        expected_pos = list(rows.assign(neg=-rows.score).sort_values(["neg", "id"]).id[:5])
        assert w.most_positive == expected_pos
        # each item once, most negative first (a window of few items has items among both extremes)
        assert [e.id for e in w.evidence] == list(dict.fromkeys(expected_neg + expected_pos))
        assert all(e.title.startswith("item ") for e in w.evidence)


def test_evidence_ties_at_the_cut_are_decided_by_id():
    """Six items with the same top score: the five with the lowest ids are the most positive,
    whichever order they come in (and the same for the most negative)."""
    for order in (list(range(8)), list(reversed(range(8)))):
        b = Bucket()
        b.add_many(scored(i, "Macro", i, 0.75 if i < 6 else 0.1) for i in order)
        assert b.most_positive == [(0.75, scored(i, "Macro", i, 0.75).id, *point_of(scored(i, "Macro", i, 0.75))[2:])
                                   for i in sorted(range(6), key=lambda i: scored(i, "Macro", i, 0.75).id)][:5]
        worst = Bucket()
        worst.add_many(scored(i, "Macro", i, -0.75 if i < 6 else 0.1) for i in order)
        assert [p[1] for p in worst.most_negative] == sorted(scored(i, "Macro", i, -0.75).id for i in range(6))[:5]
        total = Bucket.total_of([b, worst])
        assert [p[1] for p in total.most_positive] == [p[1] for p in b.most_positive]


def test_window_records_built_unvalidated_are_valid_records():
    """to_window skips validation for speed: every record it builds must survive the strict
    decode unchanged, and equal a validated copy."""
    rng = random.Random(3)
    buckets = [Bucket(late=2)]  # no items, only late ones
    for n in (1, 2, 7, 60):
        b = Bucket()
        b.add_many(scored(i, "Macro", rng.uniform(0, 5), rng.choice([-1.0, 1.0, round(rng.uniform(-1, 1), 4)]))
                   for i in range(n))
        buckets.append(b)
        assert len(b.most_negative) == len(b.most_positive) == min(5, n)
    buckets.append(Bucket(count=3, total=3.0000000000000004, sum_sq=3.0, positive=3))  # mean just over 1: clamped
    for bucket in buckets:
        w = to_window("Macro", "5m", T0, T0 + 5 * MIN, bucket, final=bucket.count > 2)
        assert decode(TopicWindow, w.encode()) == w
        assert TopicWindow.model_validate(w.model_dump()) == w
        distinct = {p[1] for p in (*bucket.most_negative, *bucket.most_positive)}
        assert len(w.evidence) == len(distinct) == len({e.id for e in w.evidence})


def test_bucket_round_trips_through_its_table_form():
    b = Bucket()
    for i, s in enumerate([-0.5, 0.2, 0.9]):
        b.add(scored(i, "Macro", 0, s))
    assert Bucket.from_dict(b.to_dict()) == b
    assert b.std_error() == pytest.approx(pd.Series([-0.5, 0.2, 0.9]).sem())


@pytest.mark.parametrize("n", [0, 1, 4, 5, 6, 10, 47, 48, 49, 120])
def test_evidence_selection_is_the_same_for_few_and_many_points(n):
    """Few points are fully sorted, many selected with heaps: both give the lowest / highest
    ``EVIDENCE_K`` by score, ties (frequent here: scores from a short list) by id."""
    rng = random.Random(n)
    for _ in range(50):
        points = [(rng.choice([-0.5, 0.0, 0.0, 0.25, round(rng.uniform(-1, 1), 2)]), f"{rng.getrandbits(32):08x}",
                   "t", None, "2026-11-18T13:00:00+00:00") for _ in range(n)]
        assert _lowest(points) == sorted(points)[:EVIDENCE_K]
        assert _highest(points) == sorted(points, key=lambda p: (-p[0], p[1]))[:EVIDENCE_K]
        assert _lowest(set(points)) == _lowest(points) and _highest(set(points)) == _highest(points)


def test_merged_buckets_equal_the_sum_of_their_items():
    rng = random.Random(3)
    items = [scored(i, "IPO", i, round(rng.uniform(-1, 1), 3)) for i in range(40)]
    for cut in (0, 1, 17, 40):
        left, right, whole = Bucket(), Bucket(), Bucket()
        left.add_many(items[:cut])
        right.add_many(items[cut:])
        whole.add_many(items)
        for merged in (left.merged(right), right.merged(left)):
            assert (merged.count, merged.negative, merged.neutral, merged.positive, merged.late) == \
                (whole.count, whole.negative, whole.neutral, whole.positive, whole.late)
            assert merged.total == pytest.approx(whole.total) and merged.sum_sq == pytest.approx(whole.sum_sq)
            assert (merged.most_negative, merged.most_positive) == (whole.most_negative, whole.most_positive)
    assert EMPTY.merged(whole) is whole and whole.merged(EMPTY) is whole  # the sum of nothing
    assert Bucket().merged(whole) == whole and EMPTY == Bucket()


@settings(max_examples=150, deadline=None)
@given(scores=st.lists(st.tuples(st.floats(-1, 1, allow_nan=False), st.integers(0, 600)), max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=4), shuffle=st.randoms(use_true_random=False))
def test_every_window_counts_each_cutoff_exactly_with_its_earliest_items_in_any_order(scores, cuts, shuffle):
    """The ladder is exact whatever the split into buckets, the merge order and the arrival
    order: per cutoff, the number of items below it and the EVIDENCE_K earliest of them."""
    from moodwire.records import LADDER

    items = [scored(i, "Banks", minute, round(s, 3)) for i, (s, minute) in enumerate(scores)]
    order = list(items)
    shuffle.shuffle(order)
    bounds = sorted({0, len(order), *(min(c, len(order)) for c in cuts)})
    parts = []
    for lo, hi in zip(bounds, bounds[1:]):
        b = Bucket()
        for item in order[lo:hi]:
            b.add(item)
        parts.append(Bucket.from_dict(b.to_dict()))
    merged = EMPTY
    for part in reversed(parts):
        merged = part.merged(merged)
    whole = Bucket.total_of(parts)
    w = to_window("Banks", "1h", T0, T0 + timedelta(hours=11), whole, final=True)
    for bucket in (merged, whole):
        for cut, (n, first) in zip(LADDER, bucket.strong):
            below = sorted((i for i in items if i.score < cut), key=lambda i: (i.published_at, i.id))
            assert n == len(below)
            assert [p[1] for p in first] == [i.id for i in below[:EVIDENCE_K]]
    assert [(s.below, s.count, [e.id for e in s.first]) for s in w.strong] == \
        [(cut, n, [p[1] for p in first]) for cut, (n, first) in zip(LADDER, whole.strong) if n]
    assert TopicWindow.model_validate(w.model_dump()) == w


def test_a_bucket_stored_before_the_ladder_reads_as_counting_nothing_below_it():
    b = Bucket()
    b.add(scored(1, "Banks", 0, -0.95))
    old = {k: v for k, v in b.to_dict().items() if k != "strong"}
    assert Bucket.from_dict(old).strong is NO_STRONG and b.strong[-1][0] == 1
