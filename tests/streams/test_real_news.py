"""News as it really arrives, through the real fold: duplicates, reordering, late, very late and
future-dated items, replays after a crash. The expectation is computed independently: the
policy below in plain Python (which records count), then the windows with pandas."""

from __future__ import annotations

import random
import tracemalloc
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moodwire.spans import parse_windows
from streams.aggregate.fold import Aggregator
from streams.aggregate.keys import MARKER_PREFIX, marker_key
from tests.streams.aggregate_support import T0, WINDOWS, assert_windows_equal, expected_windows, make
from tests.streams.test_aggregate import all_windows, land, run

LATENESS = timedelta(minutes=10)
FUTURE = timedelta(minutes=15)
NOW = T0 + timedelta(hours=6)  # the stage's clock in these tests


def aggregator() -> Aggregator:
    return Aggregator(parse_windows(WINDOWS), LATENESS, future=FUTURE, clock=lambda: NOW)


def expected_records(records: list) -> list:
    """Which records count, by the documented policy (docs/aggregate-worker.md, "Input
    policies"), written apart from the fold: in offset order, the first record of a (key, id)
    decides; it counts unless it is dated more than FUTURE after the clock or before the
    watermark (newest counted publish time minus the lateness)."""
    seen, newest, counted = set(), None, []
    for _, item in sorted(records, key=lambda r: r[0]):
        if (item.key, item.id) in seen:
            continue
        seen.add((item.key, item.id))
        if item.published_at > NOW + FUTURE or (newest is not None and item.published_at < newest - LATENESS):
            continue
        newest = item.published_at if newest is None else max(newest, item.published_at)
        counted.append(item)
    return counted


def test_five_thousand_copies_of_one_item_count_once():
    item = make("Earnings", T0, random.Random(1), "only")
    agg, state = aggregator(), {}
    results = run(agg, state, [(i, item) for i in range(5000)], 400)
    assert sum(r.duplicates for r in results) == 4999
    windows = all_windows(agg, state, final=False)
    assert {w.count for w in windows.values()} == {1} and len(windows) == 1 + 12 + 24


def test_two_hundred_items_sent_five_times_in_any_order_are_exact():
    rng = random.Random(2)
    items = [make(rng.choice(["Macro", "Energy"]), T0 + timedelta(seconds=20 * i), rng, f"x{i}") for i in range(200)]
    copies = [item for item in items for _ in range(5)]
    records = list(enumerate(copies))
    agg, state = aggregator(), {}
    results = run(agg, state, records, 64)
    assert sum(r.duplicates for r in results) == 800
    assert_windows_equal(all_windows(agg, state), expected_windows(expected_records(records)))


def test_a_very_late_item_is_dead_lettered_and_changes_no_window():
    rng = random.Random(3)
    early = [make("Markets", T0 + timedelta(minutes=i), rng, f"a{i}") for i in range(30)]
    later = [make("Markets", T0 + timedelta(days=3, minutes=i), rng, f"b{i}") for i in range(30)]
    agg, state = aggregator(), {}
    agg.clock = lambda: T0 + timedelta(days=4)
    run(agg, state, list(enumerate(early + later)), 16)
    before = {k: v for k, v in state.items() if not k.startswith("~")}
    very_late = make("Markets", T0 + timedelta(minutes=3), rng, "very-late")
    result = agg.apply(state, 0, [(60, very_late)])
    assert [entry.item.id for entry in result.late] == [very_late.id]
    assert "watermark" in result.late[0].reason
    assert result.windows == [] and result.touched == set()
    assert not [k for k in result.bucket_writes if not k.startswith("~")]  # no bucket written or deleted
    land(state, result)
    assert {k: v for k, v in state.items() if not k.startswith("~")} == before
    again = agg.apply(state, 0, [(61, very_late)])  # and its copy is a duplicate, not a second dead letter
    assert again.late == [] and again.duplicates == 1


def test_an_item_dated_2100_is_dead_lettered_moves_no_watermark_and_allocates_nothing_per_year():
    rng = random.Random(4)
    items = [make("Crypto", T0 + timedelta(minutes=i), rng, f"c{i}") for i in range(20)]
    broken = make("Crypto", datetime(2100, 1, 1, tzinfo=timezone.utc), rng, "broken-date")
    after = [make("Crypto", T0 + timedelta(minutes=20 + i), rng, f"d{i}") for i in range(20)]
    agg, state = aggregator(), {}
    tracemalloc.start()
    results = run(agg, state, list(enumerate(items + [broken] + after)), 8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    future = [entry for r in results for entry in r.future]
    assert [entry.item.id for entry in future] == [broken.id]
    assert future[0].reason.startswith("future: published_at 2100-01-01")
    assert sum(len(r.late) for r in results) == 0  # the items after it are on time
    assert agg.watermark(state, 0) == after[-1].published_at - LATENESS
    assert peak < 20 * 2**20, peak


def test_a_partition_whose_first_item_is_decades_old_closes_only_windows_that_hold_news():
    rng = random.Random(5)
    old = make("Gold", datetime(1971, 1, 1, tzinfo=timezone.utc), rng, "old")
    items = [make("Gold", T0 + timedelta(minutes=i), rng, f"g{i}") for i in range(30)]
    agg, state = aggregator(), {}
    tracemalloc.start()
    results = run(agg, state, list(enumerate([old] + items)), 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    finals = [w for r in results for w in r.windows]
    assert {w.start.year for w in finals} == {1970, 1971, 2026}
    assert [w.count for w in finals if w.start.year < 2000] == [1] * len([w for w in finals if w.start.year < 2000])
    assert peak < 20 * 2**20, peak


@st.composite
def streams(draw):
    """Records of several keys on one partition — topics and the watchlist copies of the same
    items (same id, another key) — with duplicates (a copy at once or later), disorder within
    and beyond the lateness, very late and future-dated items."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    topics = draw(st.lists(st.sampled_from(["Earnings", "Macro", "Energy"]), min_size=1, max_size=3, unique=True))
    n = draw(st.integers(1, 160))
    records = []
    for i in range(n):
        kind = rng.random()
        at = T0 + timedelta(minutes=2 * i + rng.uniform(-4, 4))
        if kind < 0.08:
            at -= timedelta(minutes=rng.choice([15, 90, 60 * 30]))  # late, very late
        elif kind < 0.12:
            at = NOW + timedelta(minutes=rng.choice([16, 60 * 24 * 365 * 70]))  # future
        item = make(rng.choice(topics), at, rng, f"i{i}")
        copies = [item] + [item.model_copy(update={"watchlist": name}) for name in ("banks", "oil")
                           if rng.random() < 0.3]
        for record in copies:
            records.append(record)
            while rng.random() < 0.2:  # a copy now or later
                records.insert(len(records) + rng.randrange(-1, 1) if rng.random() < 0.5 else len(records), record)
    records += [records[rng.randrange(len(records))] for _ in range(draw(st.integers(0, 5)))]
    batch = draw(st.integers(1, 50))
    crash = draw(st.none() | st.integers(0, len(records)))
    return list(enumerate(records)), batch, crash


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_every_final_window_equals_pandas_over_the_distinct_in_lateness_items(case):
    records, batch, crash = case
    agg, state = aggregator(), {}
    if crash is not None:  # a crash after part of a batch's writes landed and before its marker
        run(agg, state, records[:crash], batch)
        partial = agg.apply(state, 0, records[crash:crash + batch])
        writes = list(partial.bucket_writes.items())
        random.Random(crash).shuffle(writes)
        state.update({k: v for k, v in writes[: len(writes) // 2] if v is not None})
        agg = aggregator()
        agg.adopt(0, [k for k in state if not k.startswith(MARKER_PREFIX)], state)
        marker = state.get(marker_key(0), {"offset": -1})["offset"]
        records_left = [r for r in records if r[0] > marker - batch]  # read again from before the marker
        run(agg, state, records_left, batch)
    else:
        run(agg, state, records, batch)
    land(state, agg.apply(state, 0, []))
    closing = agg.heartbeat(state, 0, NOW + timedelta(days=3))
    assert all(w.final for w in closing)
    expected = expected_records(records)
    if not expected:  # every item future or a copy: no window at all
        assert all_windows(agg, state) == {}
        return
    assert_windows_equal(all_windows(agg, state), expected_windows(expected))


def test_a_zero_date_is_refused_by_the_record_and_read_as_no_date_by_ingest():
    from pydantic import ValidationError

    from moodwire.records import NewsItem, item_id
    from streams.ingest.normalize import make_item

    year_one = datetime(1, 1, 1, tzinfo=timezone.utc)
    try:  # the fold computes watermarks from publish times: year 1 would overflow them
        NewsItem(id=item_id(None, "x", "t"), source="x", title="t", published_at=year_one, fetched_at=T0)
    except ValidationError as exc:
        assert "is before 1970 (a feed's empty date?)" in str(exc)
    else:
        raise AssertionError("a publish time in year 1 was accepted")
    item = make_item(source="feed", title="Bank shares fall", url=None, body=None, published="0001-01-01T00:00:00Z",
                     fetched_at=T0)
    assert item.published_at == T0 and item.published_estimated
