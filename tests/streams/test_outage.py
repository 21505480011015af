"""A classify outage longer than the allowed lateness loses no headline from the windows (I8).

The probe of issue 41, at the shipped settings: classify is down while 400 headlines published
over the last 60 minutes reach news.raw; it starts again and reads the backlog a partition at a
time, so news.scored carries publish times out of order by up to the hour. Judged against
news.scored's own order, 230 of the 400 were dead-lettered late before. None was late when it
entered news.raw, so none may be now, and the 5-minute topic windows must hold all 400."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from moodwire.records import NewsItem, TopicWindow, decode, item_id
from moodwire.settings import Settings
from moodwire.topics import SENTIMENT_WINDOWS
from tests.streams.aggregate_support import start_aggregate
from tests.streams.test_aggregate_worker import dead_letters, stop
from tests.streams.test_classify import produce, read_all, start_classify

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TITLES = ["Harborline Bank shares plunge after bond losses", "Fed holds rates steady",
          "Novacrest Systems beats profit estimates", "Oil slides on inventory build"]


def _latest_5m_counts(bootstrap: str) -> int:
    """The headlines the 5-minute topic windows hold: the last record of each window, summed."""
    latest: dict[tuple, int] = {}
    for window in read_all(bootstrap, SENTIMENT_WINDOWS, lambda r: decode(TopicWindow, r.value)):
        if window.window == "5m" and not window.topic.startswith("watchlist:"):
            latest[(window.topic, window.start)] = window.count
    return sum(latest.values())


def test_a_classify_outage_of_an_hour_of_news_loses_none_of_it(fresh_embedded, tiny_model, tmp_path):
    lateness = Settings.model_fields["aggregate_lateness"].default
    assert lateness == "10m"  # the shipped setting, which start_aggregate sets too
    now = datetime.now(timezone.utc).replace(microsecond=0)
    news = []
    for i in range(400):  # every 9 s over the last hour, in publish order: none late on arrival
        at = now - timedelta(minutes=60) + timedelta(seconds=9 * i)
        title = f"{TITLES[i % len(TITLES)]} (outage #{i})"
        news.append(NewsItem(id=item_id(None, "test", title), source="test", title=title, published_at=at,
                             fetched_at=at))
    produce(fresh_embedded, news)  # classify is down: the hour piles up on news.raw
    aggregate = start_aggregate(fresh_embedded, tmp_path / "aggregate", tmp_path / "aggregate.log")
    classify = start_classify(fresh_embedded, tiny_model, tmp_path / "classify.log",
                              max_batch=Settings.model_fields["max_batch"].default)
    try:
        deadline, counted = time.monotonic() + 180, 0
        while counted < 400 and time.monotonic() < deadline:
            time.sleep(2)
            counted = _latest_5m_counts(fresh_embedded)
        late = [d for d in dead_letters(fresh_embedded) if d.reason == "late"]
        assert (len(late), counted) == (0, 400), (tmp_path / "aggregate.log").read_text()[-2000:]
    finally:
        stop(aggregate)
        classify.terminate()
        classify.wait(60)
