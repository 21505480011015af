"""Rules judged early (``negative_count`` with ``for: 0s``) fire on the partial window that first
holds, as the worker's emitter sends them, with the same alert the back-test makes from final
windows only: the start is the publish time of the headline that made the count, whatever
the windows' completion waits for."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.fold import fold_window
from alerts.rules import RuleFile
from moodwire.records import ScoredNews, item_id
from moodwire.spans import parse_windows
from streams.aggregate.fold import Aggregator
from streams.backtest.simulate import commit, fold

T0 = datetime(2023, 3, 9, 18, 0, tzinfo=timezone.utc)
KEY = "watchlist:US regional banks"
RULES = RuleFile.model_validate(yaml.safe_load("""
rules:
  - {name: early, watchlists: all, window: 6h, when: {negative_count: {at_least: 3, score_below: -0.7}},
     keep_firing_for: 1h, repeat_interval: 24h}
  - {name: early-two, watchlists: all, window: 6h, when: {negative_count: {at_least: 2, score_below: -0.9}},
     min_count: 4}   # min_count above at_least: judged on final windows
  - {name: confirmed, watchlists: all, window: 6h, when: {negative_count: {at_least: 3, score_below: -0.7}},
     for: 1h}
""")).rules
WINDOWS = parse_windows("6h/1h")
LATENESS = timedelta(hours=2)


def item(i: int, minute: int, score: float) -> ScoredNews:
    at = T0 + timedelta(minutes=minute)
    return ScoredNews(id=item_id(None, "t", f"h{i}"), source="t", title=f"headline {i}", published_at=at,
                      fetched_at=at, topic="Financials", topic_confidence=0.9, watchlist="US regional banks",
                      sentiment="negative" if score < 0 else "positive",
                      probs={"negative": max(0.0, -score), "neutral": 1 - abs(score), "positive": max(0.0, score)},
                      score=score, model="m@1", classified_at=at)


def live(items: list[ScoredNews]) -> list[tuple]:
    """What the worker does, one record per batch: the windows a record makes final are sent at
    once, the partial windows it changed by the emitter after; the alert agent folds them in
    that order. Returns (alert event, publish time of the newest record read when it was made)."""
    aggregator = Aggregator(WINDOWS, LATENESS, clock=lambda: datetime(2030, 1, 1, tzinfo=timezone.utc))
    state: dict = {}
    alert_state: dict = {}
    offset = 0
    out = []

    def send(windows, newest):
        nonlocal offset
        for w in windows:
            out.extend((e, newest) for e in fold_window(RULES, alert_state, alert_state, w, offset))
            offset += 1

    for n, record in enumerate(items):
        applied = aggregator.apply(state, 0, [(n, record)])
        commit(state, applied, 0)
        send(applied.windows, record.published_at)
        wm = aggregator.watermark(state, 0)
        partial = sorted(applied.touched, key=lambda t: (t[0], t[1], t[2]))
        send([aggregator.window_of(state, topic, aggregator.spec(name), start, wm) for topic, name, start in partial],
             record.published_at)
    last = max(i.published_at for i in items)
    send(aggregator.heartbeat(state, 0, last + timedelta(hours=6) + LATENESS), last)
    return out


def shape(e):
    return (e.rule, e.topic, e.status, e.seq, e.starts_at, e.ends_at, e.value, [x.id for x in e.evidence])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 36 * 60), st.sampled_from([-0.95, -0.85, -0.75, -0.5, 0.1, 0.6])),
                min_size=1, max_size=40, unique_by=lambda t: t[0]))  # (ties in time: alerts/evaluate.py)
def test_an_early_rule_fires_on_the_partial_window_with_the_back_tests_alert(news):
    items = [item(i, minute, score) for i, (minute, score) in enumerate(sorted(news))]  # publish order
    expected = fold(items, RULES, WINDOWS, LATENESS, partitions=1).alerts
    got = live(items)
    assert sorted(map(shape, (e for e, _ in got))) == sorted(map(shape, expected))
    for event, newest in got:
        if event.rule == "early" and event.status == "firing" and event.seq == 1:
            # fired by the partial window of the decisive headline: nothing after it was read yet
            assert newest == event.starts_at == max(e.published_at for e in event.evidence)
        # (a later episode that its windows held while the last one fired waits for them to be final)


def test_which_rules_are_judged_early():
    assert [r.judged_early for r in RULES] == [True, False, False]


def test_the_decisive_headline_fires_before_its_window_is_complete():
    items = [item(0, 0, -0.8), item(1, 30, 0.2), item(2, 50, -0.9), item(3, 65, -0.75), item(4, 600, 0.1)]
    got = live(items)
    first = next((e, newest) for e, newest in got if e.rule == "early")
    assert first[0].starts_at == first[1] == items[3].published_at  # the third below -0.7
    assert [x.title for x in first[0].evidence] == ["headline 0", "headline 2", "headline 3"]
    confirmed = next(e for e, _ in got if e.rule == "confirmed")  # for: 1h: judged on final windows
    assert confirmed.starts_at > items[3].published_at
