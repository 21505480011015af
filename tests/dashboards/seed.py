"""A store seeded with real rows through the real writers: scored items and windows (the
aggregation core and the aggregate sink), alert events (the notifier's outbox)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from alerts.outbox import record_event
from alerts.routing import Destination
from moodwire.records import AlertEvent, Evidence, ScoredNews, TargetReading, item_id
from moodwire.spans import parse_windows
from streams.aggregate.fold import Aggregator
from streams.aggregate.store_sink import upsert_items, upsert_windows

XSS_TITLE = '<script>window.xssRan=1</script><img src=x onerror="window.xssRan=2"> Bank "fails"'
TOPICS = ["Macro", "Earnings", "Energy | Oil"]
WATCHLIST = "US regional banks"  # every third Macro item and every fifth Earnings item match it
TERM = "SVB"  # what a matched headline is read toward: the opposite of the headline's own reading


def now_floor() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)


def _probs(score: float) -> dict[str, float]:
    neg, pos = max(0.0, -score), max(0.0, score)
    return {"negative": neg, "neutral": 1 - neg - pos, "positive": pos}


def _label(score: float) -> str:
    return "negative" if score < -0.2 else "positive" if score > 0.2 else "neutral"


def items(end: datetime, hours: int = 6, seed: int = 3) -> list[ScoredNews]:
    """Every few minutes an item per topic; Macro turns negative in the last 90 minutes."""
    rng = random.Random(seed)
    out = []
    start = end - timedelta(hours=hours)
    for k in range(hours * 12):
        at0 = start + timedelta(minutes=5 * k)
        for topic in TOPICS:
            for j in range(3):
                at = at0 + timedelta(seconds=rng.randrange(300))
                if at >= end:
                    continue
                bad = topic == "Macro" and at > end - timedelta(minutes=90)
                score = -rng.uniform(0.5, 1.0) if bad else rng.uniform(-0.4, 0.6)
                sentiment = "negative" if score < -0.2 else "positive" if score > 0.2 else "neutral"
                neg = max(0.0, -score)
                pos = max(0.0, score)
                probs = {"negative": neg, "neutral": 1 - neg - pos, "positive": pos}
                title = f"{topic} headline {k}-{j}"
                url = f"https://news.example/{topic.split()[0].lower()}/{k}-{j}"
                if topic == "Macro" and k == hours * 12 - 6 and j == 0:
                    title, url = XSS_TITLE, "javascript:window.xssRan=3"
                matched = (topic == "Macro" and k % 3 == 0) or (topic == "Earnings" and k % 5 == 0)
                targets = {WATCHLIST: TargetReading(terms=[TERM], sentiment=_label(-score), probs=_probs(-score),
                                                    score=-score)} if matched else {}
                out.append(ScoredNews(id=item_id(url, "seed", title), source="seed-wire", title=title, url=url,
                                      published_at=at, fetched_at=at, topic=topic, topic_confidence=0.9,
                                      sentiment=sentiment, probs=probs, score=score, model="seed@1",
                                      classified_at=at, watchlists=[WATCHLIST] if matched else [], targets=targets))
    return out


def seed(engine, end: datetime | None = None) -> dict:
    end = end or now_floor()
    news = items(end)
    agg = Aggregator(parse_windows("5m,1h/5m,24h/1h"), timedelta(minutes=10))
    state: dict = {}
    records = []  # news.scored: each item, then its watchlist copy (as moodwire classify sends them)
    for item in sorted(news, key=lambda i: i.published_at):
        records.append(item)
        records += [item.for_watchlist(w) for w in item.watchlists]
    result = agg.apply(state, 0, list(enumerate(records)))
    state.update({k: v for k, v in result.bucket_writes.items() if v is not None})
    state["~partition/0"] = result.marker
    finals = result.windows + agg.heartbeat(state, 0, end + timedelta(days=2))
    upsert_items(engine, news)
    upsert_windows(engine, finals)
    worst = sorted((i for i in news if i.topic == "Macro"), key=lambda i: i.score)[:3]
    starts = end - timedelta(minutes=60)
    event = AlertEvent(fingerprint="fp-macro", rule="negative-turn", topic="Macro", status="firing", value=-0.71,
                       threshold=-0.3, window="1h", starts_at=starts, seq=1, severity="critical",
                       labels={"team": "risk"},
                       evidence=[Evidence(id=i.id, title=i.title, url=i.url, score=i.score, published_at=i.published_at)
                                 for i in worst])
    old = AlertEvent(fingerprint="fp-energy", rule="negative-turn", topic="Energy | Oil", status="resolved",
                     value=-0.05, threshold=-0.3, window="1h", starts_at=end - timedelta(hours=5),
                     ends_at=end - timedelta(hours=4), seq=2, severity="warning",
                     reason="2 items in the window, under min_count 3: not judged")
    hook = Destination("hook", "route", ("rule", "topic"), timedelta(0), timedelta(0), timedelta(hours=4))
    for e in (event, old):
        record_event(engine, e, [hook])
    return {"end": end, "items": news, "windows": finals, "alert": event}
