"""The pure aggregation core: exact windows, replays after partial writes, lateness, heartbeat."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from moodwire.spans import WindowSpec, parse_windows
from streams.aggregate.fold import Aggregator, BatchResult
from streams.aggregate.keys import bucket_key, marker_key, parse_bucket_key
from streams.aggregate.windows import Bucket, to_window
from tests.streams.aggregate_support import T0, WINDOWS, assert_windows_equal, expected_windows, make, scored_items

TOPICS = ["Earnings", "Macro", "Energy | Oil"]


def land(state: dict, result: BatchResult, buckets: bool = True, marker: bool = True) -> None:
    if buckets:
        for key, value in result.bucket_writes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    if marker:
        state[marker_key(result.partition)] = result.marker


def run(agg: Aggregator, state: dict, records: list, batch: int) -> list[BatchResult]:
    results = []
    for i in range(0, len(records), batch):
        result = agg.apply(state, 0, records[i:i + batch])
        land(state, result)
        results.append(result)
    return results


def all_windows(agg: Aggregator, state: dict, final: bool = True) -> dict:
    """Every window holding data, computed from the state (as the emitter does)."""
    out = {}
    for key in list(state):
        if key.startswith("~"):
            continue
        topic, step, start = parse_bucket_key(key)
        for spec in agg.windows:
            if spec.step == step:
                for s in spec.starts_covering(start):
                    w = agg.window_of(state, topic, spec, s, agg.watermark(state, 0))
                    if w.count or w.late_count:
                        out[(topic, spec.name, s)] = w
    return out


def aggregator(lateness: str = "10m") -> Aggregator:
    return Aggregator(parse_windows(WINDOWS), timedelta(minutes=int(lateness[:-1])))


def test_windows_match_an_independent_pandas_computation_whatever_the_batch_size():
    items = scored_items(TOPICS, 800, seed=3)
    records = list(enumerate(items))
    expected = expected_windows(items)
    for batch in (1, 37, 800):
        agg, state = aggregator(), {}
        run(agg, state, records, batch)
        assert_windows_equal(all_windows(agg, state), expected)


def test_windows_asked_together_or_alone_are_the_same_sums_of_their_buckets():
    """``windows_of`` sums a window from two partial sums shared by the windows asked with it;
    each window must equal the plain sum of its buckets, and be bit-identical whichever
    windows it is asked with (a replay asks in other groups than the run it repeats)."""
    rng = random.Random(11)
    items = [item for item in scored_items(TOPICS, 1500, seed=5, spread=timedelta(hours=50)) if rng.random() < 0.7]
    agg, state = aggregator(), {}
    run(agg, state, list(enumerate(items)), 250)
    for topic in TOPICS:
        for spec in agg.windows:
            k = spec.span // spec.step
            starts = [T0 - spec.span + spec.step * i for i in range(52 * 12 // (spec.step // timedelta(minutes=5)))]
            together = agg.windows_of(state, topic, spec, starts, None)
            picked = sorted(rng.sample(range(len(starts)), len(starts) // 3))
            some = agg.windows_of(state, topic, spec, [starts[i] for i in picked], None)
            assert some == [together[i] for i in picked]
            assert agg.windows_of(state, topic, spec, starts[::-1], None) == together[::-1]
            for i in rng.sample(range(len(starts)), 10):
                assert agg.window_of(state, topic, spec, starts[i], None) == together[i]
            for start, window in zip(starts, together):
                parts = [agg.held.bucket(state, bucket_key(topic, spec.step, start + spec.step * j)) for j in range(k)]
                plain = to_window(topic, spec.name, start, start + spec.span,
                                  Bucket.total_of([p for p in parts if p is not None]), final=False)
                assert window.model_dump(exclude={"mean_score", "sum_sq"}) == \
                    plain.model_dump(exclude={"mean_score", "sum_sq"})
                assert window.mean_score == pytest.approx(plain.mean_score, abs=1e-12)
                assert window.sum_sq == pytest.approx(plain.sum_sq, rel=1e-12)
    assert sum(w.count for w in agg.windows_of(state, TOPICS[0], agg.spec("24h"), [T0], None)) > 0


def test_a_replay_after_a_crash_between_writes_counts_every_item_once():
    items = scored_items(TOPICS, 300, seed=5)
    records = list(enumerate(items))
    clean_agg, clean = aggregator(), {}
    run(clean_agg, clean, records, 50)

    agg, state = aggregator(), {}
    run(agg, state, records[:100], 50)
    # The next batch crashes after half of its bucket writes landed and before its marker.
    crashed = agg.apply(state, 0, records[100:150])
    landed = dict(list(crashed.bucket_writes.items())[: len(crashed.bucket_writes) // 2])
    state.update({k: v for k, v in landed.items() if v is not None})
    # The restarted worker re-reads from the last committed offset (before the first batch even).
    restarted = aggregator()
    restarted.adopt(0, [k for k in state if not k.startswith("~partition/")], state)
    results = run(restarted, state, records[40:], 60)
    assert results[0].skipped == 60  # offsets the marker covers are not looked at again
    assert {k: v for k, v in state.items()} == clean


def test_a_record_delivered_twice_in_one_batch_is_counted_once():
    # Seen after a restart: the consumer handed one record (a partition's last offset) to the
    # agent twice within one micro-batch; the window came out one item over.
    items = scored_items(TOPICS, 120, seed=8)
    records = list(enumerate(items))
    agg, state = aggregator(), {}
    twice = records[:60] + [records[59], records[30]] + records[60:]
    results = run(agg, state, twice, 200)
    assert results[0].skipped == 2
    assert_windows_equal(all_windows(agg, state), expected_windows(items))


def test_late_items_are_dead_lettered_change_no_window_and_do_not_depend_on_batch_boundaries():
    rng = random.Random(1)
    on_time = [make("Earnings", T0 + timedelta(minutes=i), rng, f"a{i}") for i in range(60)]
    late = make("Earnings", T0 + timedelta(minutes=5), rng, "late")     # 55 min behind, lateness 10 min
    in_order_enough = make("Earnings", T0 + timedelta(minutes=52), rng, "ok")  # 7 min behind: on time
    records = list(enumerate(on_time + [late, in_order_enough]))
    outcomes = []
    for batch in (1, 7, 100):
        agg, state = aggregator(), {}
        results = run(agg, state, records, batch)
        lates = [entry for r in results for entry in r.late]
        assert [entry.item.id for entry in lates] == [late.id]
        assert "watermark" in lates[0].reason and late.published_at.isoformat() in lates[0].reason
        windows = all_windows(agg, state)
        window = windows[("Earnings", "5m", T0 + timedelta(minutes=5))]
        assert window.late_count == 0 and window.count == 5  # minutes 5..9, the late one not in it
        assert windows[("Earnings", "5m", T0 + timedelta(minutes=50))].count == 6
        outcomes.append(state)
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_windows_become_final_once_the_watermark_passes_their_end():
    rng = random.Random(2)
    agg, state = aggregator(), {}
    first = agg.apply(state, 0, [(0, make("Macro", T0 + timedelta(minutes=1), rng, "x"))])
    land(state, first)
    assert first.windows == []  # watermark T0 - 9 min: nothing final yet
    second = agg.apply(state, 0, [(1, make("Macro", T0 + timedelta(minutes=16), rng, "y"))])
    land(state, second)
    finals = {(w.window, w.start) for w in second.windows}
    # watermark T0 + 6 min closes [T0, T0+5m) and the hour window [T0-55m, T0+5m), no other
    assert finals == {("5m", T0), ("1h", T0 - timedelta(minutes=55))}
    assert all(w.final and w.count == 1 for w in second.windows)


def test_heartbeat_closes_the_windows_of_an_idle_partition():
    rng = random.Random(3)
    agg, state = aggregator(), {}
    land(state, agg.apply(state, 0, [(0, make("IPO", T0, rng, "x"))]))
    finals = agg.heartbeat(state, 0, T0 + timedelta(days=2))
    assert {(w.window, w.start) for w in finals} == {
        ("5m", T0), *(("1h", T0 - k * timedelta(minutes=5)) for k in range(12)),
        *(("24h", T0 - k * timedelta(hours=1)) for k in range(24))}
    assert agg.heartbeat(state, 0, T0 + timedelta(days=1)) == []  # never moves back
    # An item that arrives after the heartbeat but within the allowed lateness of its partition's
    # own events still counts; its (already final) windows are sent again, final, with the batch.
    result = agg.apply(state, 0, [(1, make("IPO", T0 + timedelta(minutes=2), rng, "y"))])
    land(state, result)
    again = {(w.window, w.start): w for w in result.windows}
    assert result.late == [] and again["5m", T0].final and again["5m", T0].count == 2
    assert ("IPO", "5m", T0) not in result.touched
    window = agg.window_of(state, "IPO", agg.spec("5m"), T0, agg.watermark(state, 0))
    assert window.count == 2 and window.final


def test_buckets_older_than_the_longest_window_plus_retention_are_dropped():
    rng = random.Random(4)
    agg, state = aggregator(), {}
    land(state, agg.apply(state, 0, [(0, make("Gold", T0, rng, "old"))]))
    assert len([k for k in state if not k.startswith("~")]) == 2  # one bucket per distinct step (5m, 1h)
    result = agg.apply(state, 0, [(1, make("Gold", T0 + timedelta(days=3), rng, "new"))])
    gone = [k for k, v in result.bucket_writes.items() if v is None]
    assert len(gone) == 3 and sum(k.startswith("~seen/") for k in gone) == 1  # two buckets, one slot of seen ids
    land(state, result)
    assert all(parse_bucket_key(k)[2] >= T0 + timedelta(days=2) for k in state if not k.startswith("~"))


@pytest.mark.parametrize("text, message", [("1h/7m", "must divide"), ("5m,5m/1m", "once"), ("", "no windows"),
                                           ("5x", "not a duration")])
def test_window_settings_are_checked(text, message):
    with pytest.raises(ValueError, match=message):
        parse_windows(text)


def test_window_spec_starts():
    spec = WindowSpec.parse("1h/20m")
    assert spec.name == "1h" and spec.starts_covering(T0) == [T0, T0 - timedelta(minutes=20),
                                                               T0 - timedelta(minutes=40)]


def test_a_topic_arriving_on_a_second_partition_is_dead_lettered_not_mixed_in():
    rng = random.Random(6)
    agg, state = aggregator(), {}
    land(state, agg.apply(state, 0, [(0, make("Markets", T0, rng, "home"))]))
    stray = make("Markets", T0 + timedelta(minutes=1), rng, "stray")
    result = agg.apply(state, 1, [(0, stray)])
    assert [m.item.id for m in result.misrouted] == [stray.id]
    assert "keyed by their topic" in result.misrouted[0].reason
    assert all(v is None or v["partition"] == 0 for k, v in result.bucket_writes.items() if "~seen/" not in k)
    land(state, result)
    assert agg.window_of(state, "Markets", agg.spec("5m"), T0, None).count == 1
