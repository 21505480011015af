"""Items below the score cutoffs are counted only in the windows a ``negative_count`` rule judges
(``Aggregator``'s ``ladder``): the count is most of a bucket's cost. A window holding a bucket
filled without the count says so (``strong`` None) and its rules refuse it: a count is never
short, whenever the rules change."""

from __future__ import annotations

import random
from datetime import timedelta

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.evaluate import FIRING, new_state, read, step
from alerts.fold import uncounted_rules
from alerts.rules import RuleFile, ladder_windows
from moodwire.records import TopicWindow, decode
from moodwire.spans import parse_windows
from streams.aggregate.fold import Aggregator
from streams.aggregate.windows import EMPTY, NO_STRONG, Bucket, bucket_start, to_window
from tests.streams.aggregate_support import T0, WINDOWS, make, scored_items
from tests.streams.test_aggregate import all_windows, run

TOPICS = ["Earnings", "Macro"]
LATENESS = timedelta(minutes=10)
RULES = RuleFile.model_validate(yaml.safe_load("""
rules:
  - {name: day-count, window: 24h, when: {negative_count: {at_least: 2, score_below: -0.5}}, min_count: 1,
     recover: 0}
  - {name: hour-mean, window: 1h, when: {mean_below: -0.3}}
""")).rules


def aggregator(ladder=None) -> Aggregator:
    return Aggregator(parse_windows(WINDOWS), LATENESS, ladder=ladder)


def test_only_the_windows_rules_count_in_keep_the_count_and_it_is_the_same_as_everywhere():
    assert ladder_windows(RULES) == {"24h"}
    records = list(enumerate(scored_items(TOPICS, 600, seed=4, spread=timedelta(hours=30))))
    everywhere, state_all = aggregator(), {}
    day_only, state_day = aggregator(ladder_windows(RULES)), {}
    run(everywhere, state_all, records, 50)
    run(day_only, state_day, records, 50)
    expected, got = all_windows(everywhere, state_all), all_windows(day_only, state_day)
    assert got.keys() == expected.keys()
    for key, window in got.items():
        if key[1] == "24h":
            assert window == expected[key]
        else:  # the 5m step keeps no count: its windows say so, and all else is the same
            assert window.strong is None and expected[key].strong is not None
            assert window.model_copy(update={"strong": []}) == expected[key].model_copy(update={"strong": []})
    assert sum(bool(w.strong) for k, w in got.items() if k[1] == "24h") > 100  # the test sees counts
    stored = [v for k, v in state_day.items() if not k.startswith("~") and "\x1f300\x1f" in k]
    assert stored and all(v["strong"] is None for v in stored)


@settings(max_examples=20, deadline=None)
@given(switch=st.integers(0, 400), batch=st.sampled_from([23, 100]))
def test_a_rule_added_later_refuses_the_windows_filled_before_it_and_is_never_counted_short(switch, batch):
    """The worker restarts with a negative_count rule on 24h after ``switch`` records: every 24h
    window holding an hour bucket that items reached before the restart says it does not count;
    every other one counts exactly as a worker that always counted."""
    items = scored_items(TOPICS, 400, seed=9, spread=timedelta(hours=30))
    records = list(enumerate(items))
    reference, expected_state = aggregator(), {}
    run(reference, expected_state, records, batch)
    before, state = aggregator(set()), {}
    run(before, state, records[:switch], batch)
    after = aggregator({"24h"})
    after.adopt(0, [k for k in state if not k.startswith("~partition/")], state)
    run(after, state, records[switch:], batch)
    expected, got = all_windows(reference, expected_state), all_windows(after, state)
    filled_before = {(i.topic, bucket_start(i.published_at, timedelta(hours=1))) for i in items[:switch]}
    day = timedelta(hours=24)
    for (topic, name, start), window in got.items():
        if name != "24h":
            continue
        uncounted = any(t == topic and start <= at < start + day for t, at in filled_before)
        assert (window.strong is None) == uncounted
        if not uncounted:
            assert window.strong == expected[(topic, name, start)].strong


def test_a_sum_holding_a_bucket_without_the_count_has_none_and_round_trips():
    counted, uncounted = Bucket(), Bucket(strong=None)
    for i, bucket in enumerate((counted, uncounted)):
        bucket.add_many([make("Macro", T0, random.Random(i), f"x{i}").model_copy(update={"score": -0.9})])
    assert counted.strong[0][0] == 1 and uncounted.strong is None and uncounted.count == 1
    assert Bucket.from_dict(uncounted.to_dict()).strong is None
    assert counted.merged(uncounted).strong is None and uncounted.merged(counted).strong is None
    assert Bucket.total_of([counted, uncounted]).strong is None
    assert EMPTY.merged(uncounted).strong is None and Bucket.total_of([counted, EMPTY]).strong == counted.strong
    assert Bucket.from_dict({k: v for k, v in counted.to_dict().items() if k != "strong"}).strong is NO_STRONG
    window = to_window("Macro", "24h", T0, T0 + timedelta(hours=24), uncounted, final=True)
    assert window.strong is None and b'"strong":null' in window.encode()
    assert decode(TopicWindow, window.encode()) == window


def test_a_negative_count_rule_refuses_a_window_that_does_not_count_and_a_firing_alert_resolves_saying_why():
    rule = RULES[0]
    items = [make("Macro", T0 + timedelta(minutes=i), random.Random(i), f"n{i}")
             .model_copy(update={"score": -0.8}) for i in range(3)]
    counted, uncounted = Bucket(), Bucket(strong=None)
    counted.add_many(items)
    uncounted.add_many(items)
    end = T0 + timedelta(hours=24)
    holds = to_window("Macro", "24h", T0, end, counted, final=True)
    later = to_window("Macro", "24h", T0 + timedelta(hours=1), end + timedelta(hours=1), uncounted, final=True)
    assert read(rule, holds, []).holds and uncounted_rules(RULES, holds) == []
    reading = read(rule, later, [])
    assert not reading.holds and reading.value == 0.0 and "not judged until those items leave" in reading.why
    assert uncounted_rules(RULES, later) == [rule]  # the worker says it once per rule
    state, fired = step(rule, "Macro", new_state(), holds, read(rule, holds, []))
    assert state["status"] == FIRING and [e.status for e in fired] == ["firing"]
    _, resolved = step(rule, "Macro", state, later, reading)
    assert [(e.status, "MOODWIRE_ALERT_RULES" in e.reason) for e in resolved] == [("resolved", True)]
