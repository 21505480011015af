"""A store holding months of history, built with the project's own writers: synthetic scored
headlines (``bench/synthetic.py``) folded into windows by the aggregation core
(``streams.aggregate.fold.Aggregator``) and written by the aggregate sink (``upsert_items``,
``upsert_windows``); alert episodes and their deliveries by the notifier's outbox
(``alerts.outbox.record_event``). For bench/bench_dashboard.py."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone

from alerts.outbox import record_event
from alerts.routing import Destination
from moodwire.records import AlertEvent, Evidence
from moodwire.spans import parse_windows
from moodwire.store import analyze, open_store
from streams.aggregate.fold import Aggregator
from streams.backtest.simulate import commit
from streams.aggregate.store_sink import upsert_items, upsert_windows

from bench.synthetic import TOPICS, scored

WATCHLISTS = ["US regional banks", "UK sovereign", "Oil majors", "Euro periphery", "Chip makers"]
WINDOWS = "5m,1h/5m,24h/1h"
RECEIVERS = [Destination("risk-desk", "route", ("rule", "topic"), timedelta(seconds=30), timedelta(minutes=5),
                         timedelta(hours=4))]


def build(url: str, end: datetime, days: int, per_hour: int, say=print, seed: int = 7) -> dict:
    """Fill the store at ``url`` with ``days`` of history ending at ``end``, ``per_hour``
    headlines an hour over 20 topics (one in 20 also on a watchlist); returns counts and time."""
    engine = open_store(url)
    rng = random.Random(seed)
    agg = Aggregator(parse_windows(WINDOWS), timedelta(minutes=10))
    state: dict = {}
    offset = 0
    started = time.perf_counter()
    n_items = n_windows = 0
    drift = {t: 0.0 for t in TOPICS}
    hours = days * 24
    for h in range(hours):
        at0 = end - timedelta(hours=hours - h)
        news, records = [], []
        for topic in TOPICS:  # a slow random walk of each topic's mood
            drift[topic] = max(-0.6, min(0.6, drift[topic] + rng.uniform(-0.05, 0.05)))
        for i in range(per_hour):
            topic = rng.choice(TOPICS)
            item = scored(topic, at0 + timedelta(seconds=i * 3600 / per_hour), rng, f"{h}-{i}")
            if rng.random() < 0.05:
                item = item.model_copy(update={"watchlists": [rng.choice(WATCHLISTS)]})
            news.append(item)
            records.append(item)
            records += [item.model_copy(update={"watchlist": w}) for w in item.watchlists]
        result = agg.apply(state, 0, [(offset + k, r) for k, r in enumerate(records)])
        offset += len(records)
        commit(state, result, 0)
        upsert_items(engine, news)
        upsert_windows(engine, result.windows)
        n_items += len(news)
        n_windows += len(result.windows)
        if h % (24 * 7) == 0 and h:
            say(f"  {h // 24} days: {n_items} items, {n_windows} windows, {time.perf_counter() - started:.0f} s")
    finals = agg.heartbeat(state, 0, end + timedelta(days=2))
    upsert_windows(engine, finals)
    n_windows += len(finals)
    episodes = _alerts(engine, end, days, rng)
    analyze(engine)  # as `moodwire store prune` leaves it
    return {"items": n_items, "windows": n_windows, "episodes": episodes, "build_s": time.perf_counter() - started}


def _alerts(engine, end: datetime, days: int, rng: random.Random) -> int:
    """About one alert episode per key a week, six hours long, the latest still firing."""
    keys = TOPICS + [f"watchlist:{w}" for w in WATCHLISTS]
    n = 0
    for day in range(0, days, 7):
        for key in keys:
            starts = end - timedelta(days=days - day) + timedelta(hours=rng.randrange(24 * 7))
            if starts >= end:
                continue
            fp = f"fp-{key}-{day}"
            evidence = [Evidence(id=f"e{k}", title=f"{key} headline behind the alert {k}", url=None, score=-0.8,
                                 published_at=starts) for k in range(5)]
            common = dict(fingerprint=fp, rule="negative-turn", topic=key, value=-0.5, threshold=-0.3, window="1h",
                          starts_at=starts, severity="warning", labels={"team": "risk"}, evidence=evidence)
            record_event(engine, AlertEvent(status="firing", seq=1, **common), RECEIVERS, now=starts)
            ends = starts + timedelta(hours=6)
            if ends < end:
                record_event(engine, AlertEvent(status="resolved", seq=2, ends_at=ends, **common), RECEIVERS, now=ends)
            n += 1
    return n


def now_hour() -> datetime:
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
