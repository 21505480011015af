"""The alert state machine over window series: one firing and one resolution per episode,
`for` and hysteresis against flapping, spikes and shifts against a trailing baseline."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from alerts.evaluate import FIRING, INACTIVE, fingerprint, new_state, read, step
from alerts.rules import RuleFile
from alerts.receivers import plain_text
from moodwire.records import AlertEvent, TopicWindow, decode

T0 = datetime(2026, 11, 18, 10, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)


def rule(**overrides):
    base = {"name": "neg", "window": "1h", "when": {"mean_below": -0.3}, "min_count": 3}
    return RuleFile.model_validate(yaml.safe_load(yaml.safe_dump({"rules": [{**base, **overrides}]}))).rules[0]


def window(i: int, mean: float, count: int = 10, span: timedelta = timedelta(hours=1)) -> TopicWindow:
    start = T0 + i * STEP
    return TopicWindow(topic="Financials", window="1h", start=start, end=start + span, count=count,
                       mean_score=mean, negative_share=0.5, positive_share=0.2)


def run(r, series):
    state, events = new_state(), []
    history = []
    for w in series:
        reading = read(r, w, history)
        state, new = step(r, "Financials", state, w, reading)
        events += new
        history.append({"start": w.start.isoformat(), "count": w.count, "mean": w.mean_score})
    return state, events


def test_a_negative_episode_fires_once_and_resolves_once():
    means = [0.1] * 6 + [-0.5] * 8 + [0.2] * 6
    state, events = run(rule(**{"for": "10m"}), [window(i, m) for i, m in enumerate(means)])
    assert [e.status for e in events] == ["firing", "resolved"]
    firing, resolved = events
    assert firing.starts_at == window(6, 0).end and firing.seq == 1 and resolved.seq == 2
    assert firing.ends_at is None
    assert resolved.ends_at == window(14, 0).end and resolved.starts_at == firing.starts_at
    assert firing.fingerprint == resolved.fingerprint == fingerprint(rule(), "Financials")
    assert firing.value == -0.5 and firing.threshold == -0.3 and state["status"] == INACTIVE


def test_for_keeps_a_short_blip_from_firing():
    means = [0.1] * 5 + [-0.6] * 2 + [0.1] * 5   # two windows = 5 minutes below
    _, events = run(rule(**{"for": "10m"}), [window(i, m) for i, m in enumerate(means)])
    assert events == []


def test_hysteresis_and_keep_firing_for_stop_flapping_on_a_noisy_series():
    rng = random.Random(4)
    noisy = [-0.5] * 4 + [-0.3 + rng.uniform(-0.08, 0.08) for _ in range(30)] + [0.3] * 6
    flappy = rule()  # no guards: fires and resolves as the noise crosses -0.3
    _, raw = run(flappy, [window(i, m) for i, m in enumerate(noisy)])
    assert len(raw) > 4
    guarded = rule(**{"recover": -0.1, "keep_firing_for": "10m"})
    _, events = run(guarded, [window(i, m) for i, m in enumerate(noisy)])
    assert [e.status for e in events] == ["firing", "resolved"]


def test_too_few_items_never_fire():
    _, events = run(rule(), [window(i, -0.9, count=2) for i in range(10)])
    assert events == []


def test_with_no_data_resolve_a_resolution_from_too_few_items_says_so_not_only_the_value():
    # firing on -0.9, then the news thins out: 2 items (min_count 3) between the threshold and
    # the recovery level (-0.3 … -0.1): not judged, resolved at once, saying so
    r = rule(no_data="resolve", recover=-0.1)
    _, events = run(r, [window(i, -0.9) for i in range(3)] + [window(i, -0.2, count=2) for i in range(3, 5)])
    assert [e.status for e in events] == ["firing", "resolved"]
    firing, resolved = events
    assert firing.reason is None
    assert resolved.value == -0.2 and resolved.reason == "2 items in the window, under min_count 3: not judged"
    assert "(2 items in the window, under min_count 3: not judged)" in plain_text([resolved])
    assert decode(AlertEvent, resolved.encode()) == resolved
    # a value that recovers says nothing extra, even when the window is also thin
    _, events = run(r, [window(0, -0.9), window(1, 0.4, count=2)])
    assert [e.status for e in events] == ["firing", "resolved"] and events[1].reason is None


@pytest.mark.parametrize("no_data", ["keep_state", "resolve"])
def test_thin_windows_that_still_read_past_the_threshold_never_resolve_the_alert(no_data):
    # The Credit Suisse case: firing, then a day of 2 headlines a window still at -0.9 (past
    # -0.3): too few to start an alert, but no evidence it is over: firing, whatever no_data says
    r = rule(no_data=no_data, no_data_timeout="1h", recover=-0.1)
    thin = [window(i, -0.9, count=2) for i in range(3, 3 + 12 * 24)]
    state, events = run(r, [window(i, -0.9) for i in range(3)] + thin)
    assert [e.status for e in events if e.status == "resolved"] == [] and state["status"] == FIRING
    assert state["no_data_since"] is None
    # then the few items there recover: the alert resolves (at once, or once no data has lasted
    # no_data_timeout, as no_data says), and the past-threshold stretch did not start that clock
    recovered = [window(i, 0.3, count=2) for i in range(400, 400 + 13)]
    state, events = run(r, [window(i, -0.9) for i in range(3)] + thin + recovered)
    resolved = [e for e in events if e.status == "resolved"]
    assert len(resolved) == 1 and state["status"] == INACTIVE
    assert resolved[0].ends_at == (recovered[0] if no_data == "resolve" else recovered[12]).end


def test_by_default_a_firing_alert_keeps_firing_through_no_data_then_resolves_saying_no_data():
    # firing, then thin windows (2 items < min_count 3) for an hour: still firing, no event
    r = rule(no_data_timeout="2h")
    thin = [window(i, 0.5, count=2) for i in range(3, 15)]  # 12 windows = 55 minutes after the first
    state, events = run(r, [window(i, -0.9) for i in range(3)] + thin)
    assert [e.status for e in events] == ["firing"] and state["status"] == FIRING
    # news returns, still negative: the same episode goes on, no new firing
    state, events = run(r, [window(i, -0.9) for i in range(3)] + thin + [window(15, -0.8)])
    assert [e.status for e in events] == ["firing"]
    # thin, and no longer past the threshold, for longer than no_data_timeout: resolved, saying no data
    long_thin = [window(i, -0.2, count=1) for i in range(3, 3 + 25)]  # 2 h of 5-minute steps
    state, events = run(r, [window(i, -0.9) for i in range(3)] + long_thin)
    assert [e.status for e in events] == ["firing", "resolved"] and state["status"] == INACTIVE
    assert events[1].reason.startswith("no data: fewer than min_count 3 items per 1h window since ")
    assert "(2h or more)" in events[1].reason
    # a thin window that recovered is no-data too: it does not resolve the alert early
    _, events = run(r, [window(0, -0.9), window(1, 0.4, count=2)])
    assert [e.status for e in events] == ["firing"]


def test_reminders_while_firing_carry_the_same_start_and_the_next_seq():
    _, events = run(rule(repeat_interval="30m"), [window(i, -0.6) for i in range(14)])
    assert [e.status for e in events] == ["firing", "firing", "firing"]
    assert [e.seq for e in events] == [1, 2, 3] and len({e.starts_at for e in events}) == 1


def test_older_windows_are_ignored():
    r = rule()
    state, events = step(r, "Financials", new_state(), window(5, -0.6), read(r, window(5, -0.6), []))
    assert state["status"] == FIRING and len(events) == 1
    state2, events2 = step(r, "Financials", state, window(2, 0.5), read(r, window(2, 0.5), []))
    assert state2 == state and events2 == []


def test_volume_spike_against_the_trailing_baseline():
    r = rule(window="1h", when={"volume_spike": {"z": 3}}, baseline="6h", min_count=1)
    hourly = [window(12 * i, 0.0, count=c) for i, c in enumerate([10, 12, 9, 11, 10, 11])]
    spike = window(12 * 6, 0.0, count=40)
    _, events = run(r, hourly + [spike])
    assert [e.status for e in events] == ["firing"] and events[0].value > 3


def test_sentiment_shift_against_the_trailing_baseline():
    r = rule(when={"shift": {"below": -0.4}}, baseline="6h")
    series = [window(12 * i, 0.2) for i in range(5)] + [window(60, -0.3)]
    _, events = run(r, series)
    assert [e.status for e in events] == ["firing"] and abs(events[0].value - (-0.5)) < 1e-9
    _, none = run(r, [window(60, -0.3)])  # no baseline yet: a shift cannot hold
    assert none == []


def built(i: int, scores: list[float], minutes: list[float] | None = None, final: bool = True) -> TopicWindow:
    """A window aggregated the way the worker does (streams/aggregate/windows.py)."""
    from moodwire.records import ScoredNews, item_id
    from streams.aggregate.windows import Bucket, to_window

    start = T0 + i * STEP
    bucket = Bucket()
    for k, s in enumerate(scores):
        at = start + timedelta(minutes=(minutes or range(len(scores)))[k])
        bucket.add(ScoredNews(id=item_id(None, "t", f"{i}-{k}"), source="t", title=f"headline {i}-{k}",
                              published_at=at, fetched_at=at, topic="Financials", topic_confidence=0.9,
                              sentiment="negative" if s < 0 else "positive",
                              probs={"negative": max(0, -s), "neutral": 1 - abs(s), "positive": max(0, s)},
                              score=s, model="m@1", classified_at=at))
    return to_window("Financials", "1h", start, start + timedelta(hours=1), bucket, final=final)


def test_negative_count_fires_on_the_first_strongly_negative_headlines_of_a_narrow_key():
    """Three headlines below -0.6 in the window fire, whatever the mean of the rest; the count is
    exact (every window counts its items below each cutoff), not read from the 5 kept extremes."""
    r = rule(when={"negative_count": {"at_least": 3, "score_below": -0.6}}, min_count=1, recover=1, **{"for": "5m"})
    calm = built(0, [-0.9, -0.7, 0.3, 0.5, 0.4, 0.2])  # two below -0.6: not yet
    assert read(r, calm, []).value == 2 and not read(r, calm, []).holds
    assert read(r, built(0, [-0.95] * 8), []).value == 8  # more than the 5 kept: still counted
    _, events = run(r, [calm, built(1, [-0.9, -0.7, -0.65, 0.6, 0.8, 0.7]),  # three: pending (mean +0.1)
                        built(2, [-0.9, -0.7, -0.8, 0.1]), built(3, [-0.9, -0.7, 0.1]), built(4, [-0.9, 0.2, 0.3])])
    assert [(e.status, e.value) for e in events] == [("firing", 3.0), ("resolved", 1.0)]  # held at 2, off at 1
    for bad, message in (({"at_least": 6, "score_below": -0.5}, "less than or equal to 5"),
                         ({"at_least": 3, "score_below": -0.75}, "must be one of -0.5, -0.6, -0.7, -0.8, -0.9")):
        with pytest.raises(Exception, match=message):
            rule(when={"negative_count": bad})
    with pytest.raises(Exception, match=r"recover \(3\) must be a count from 0 to 2"):
        rule(when={"negative_count": {"at_least": 3, "score_below": -0.6}}, recover=3)
