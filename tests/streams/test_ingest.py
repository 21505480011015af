"""Feeds served by a real HTTP server on loopback → ingest → news.raw on a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer

from moodwire.publish import Publisher
from moodwire.records import NewsItem, decode
from moodwire.settings import load_settings
from moodwire.store import open_store
from moodwire.topics import NEWS_RAW
from streams.ingest.fetch import USER_AGENT, PoliteClient
from streams.ingest.poller import Ingestor
from streams.ingest.seen import SeenStore
from streams.ingest.sources import Feed
from tests.streams.feed_server import FeedServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server(unique):
    s = FeedServer(unique)
    yield s
    s.close()


def raw_items(bootstrap: str, ids: set[str], timeout_s: float = 30) -> list[NewsItem]:
    """Every news.raw record whose id is in ``ids`` (the topic is shared with other tests)."""
    consumer = KafkaConsumer(NEWS_RAW, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, fetch_max_wait_ms=50)
    found: list[NewsItem] = []
    deadline = time.monotonic() + timeout_s
    idle_since = None
    while time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=300)
        # news.raw also holds other tests' records (garbage among them): pick ours by key.
        got = [decode(NewsItem, r.value) for rs in polled.values() for r in rs if r.key and r.key.decode(errors="replace") in ids]
        found.extend(got)
        if not got:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 2 and {i.id for i in found} >= ids:
                break
        else:
            idle_since = None
    consumer.close()
    return found


def make_ingestor(kafka: str, store_url: str, feeds: list[Feed]) -> tuple[Ingestor, Publisher]:
    settings = load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": kafka})
    publisher = Publisher(settings, "test-ingest")
    return Ingestor(feeds, PoliteClient(), SeenStore(open_store(store_url)), publisher), publisher


def feed(server: FeedServer, name: str, path: str, **kw) -> Feed:
    return Feed(name=name, url=f"{server.url}{path}", interval=60, timeout=5, **kw)


def test_feeds_to_news_raw_with_bad_feeds_skipped(kafka, server, tmp_path):
    feeds = [feed(server, "rss2", "/rss2"), feed(server, "atom", "/atom"), feed(server, "rss1", "/rss1"),
             feed(server, "html", "/html"), feed(server, "garbage", "/garbage"),
             feed(server, "huge", "/huge", max_bytes=1_000_000), feed(server, "down", "/error"),
             Feed(name="closed", url="http://127.0.0.1:1/rss", interval=60, timeout=2)]
    ingestor, publisher = make_ingestor(kafka, f"sqlite:///{tmp_path}/store.db", feeds)
    results = {rt.feed.name: ingestor.poll(rt) for rt in ingestor.runtimes}
    publisher.close()

    assert {n: r.published for n, r in results.items() if not r.error} == {"rss2": 3, "atom": 2, "rss1": 1}
    assert "HTML page, not an RSS/Atom feed" in results["html"].error
    assert "not a valid RSS/Atom feed" in results["garbage"].error
    assert "exceeds the 1000000-byte cap" in results["huge"].error
    assert "HTTP 503" in results["down"].error
    assert "cannot reach" in results["closed"].error
    # A failing feed backs off; the good ones are due again after their interval.
    failing = {rt.feed.name: rt for rt in ingestor.runtimes}
    assert failing["down"].failures == 1 and failing["rss2"].failures == 0

    published = [i for r in results.values() for i in r.items]
    on_topic = raw_items(kafka, {i.id for i in published})
    assert sorted(i.id for i in on_topic) == sorted(i.id for i in published)
    by_title = {i.title: i for i in on_topic}
    plunge = by_title["Harborline Bank shares plunge 35% after bond losses"]
    assert plunge.url == f"https://news.example.com/{server.token}/harborline-plunge"
    assert plunge.body == "The lender disclosed losses ."
    assert plunge.published_at.isoformat() == "2026-11-18T13:05:00+00:00" and plunge.lang == "en-us"
    assert by_title["Fed holds rates steady, signals patience"].published_at.hour == 13  # +0100 → UTC
    oil = by_title["Oil rises as OPEC+ extends output cuts"]
    assert oil.published_estimated and oil.published_at == oil.fetched_at
    assert by_title["Novacrest Systems beats profit estimates"].url == f"https://ledger.example.com/{server.token}/novacrest-beats"
    assert by_title["Gold hits record as investors seek safety"].source == "rss1"
    assert all(h["User-Agent"] == USER_AGENT for _, h in server.requests)


def test_conditional_get_and_no_duplicates_across_restart(kafka, server, tmp_path):
    store = f"sqlite:///{tmp_path}/store.db"
    feeds = [feed(server, "rss2", "/rss2"), feed(server, "atom", "/atom")]
    first, p1 = make_ingestor(kafka, store, feeds)
    r1 = {rt.feed.name: first.poll(rt) for rt in first.runtimes}
    again = {rt.feed.name: first.poll(rt) for rt in first.runtimes}
    p1.close()
    assert r1["rss2"].published == 3 and again["rss2"].not_modified
    assert server.hits("/rss2")[-1].get("If-None-Match") == '"v1"'
    assert server.hits("/atom")[-1].get("If-Modified-Since") == "Wed, 18 Nov 2026 12:00:00 GMT"

    # A restarted ingestor (new process state, same store) remembers validators and seen ids.
    second, p2 = make_ingestor(kafka, store, feeds)
    r2 = {rt.feed.name: second.poll(rt) for rt in second.runtimes}
    p2.close()
    assert r2["rss2"].not_modified
    assert server.hits("/rss2")[-1].get("If-None-Match") == '"v1"'
    assert r2["atom"].published == 0 and r2["atom"].duplicates == 2 or r2["atom"].not_modified

    ids = {i.id for r in r1.values() for i in r.items}
    assert len(raw_items(kafka, ids)) == len(ids)  # each published exactly once


def test_kafka_down_leaves_items_unseen_for_the_next_poll(server, tmp_path):
    settings = load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    from moodwire.errors import MoodwireError
    with pytest.raises(MoodwireError, match="127.0.0.1:1"):
        Publisher(settings, "down")


def test_ingest_command_once(kafka, server, tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"""
feeds:
  - {{name: wire, url: "{server.url}/rss2", interval: 60}}
  - {{name: broken, url: "{server.url}/html"}}
""")
    env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": kafka, "MOODWIRE_STORE_URL": f"sqlite:///{tmp_path}/s.db"}
    cmd = [sys.executable, "-m", "moodwire_cli", "ingest", "--feeds", str(feeds), "--once"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr
    assert "wire: 3 items, 3 new, 0 already seen" in first.stdout
    assert "broken: skipped (returned an HTML page, not an RSS/Atom feed)" in first.stdout
    assert "wire: not modified" in second.stdout


def test_ingest_command_bad_feeds_file(tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - {name: x, url: 'https://x.example', interval: 0}\n")
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "ingest", "--feeds", str(feeds), "--once"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "feed 'x': interval: Input should be greater than or equal to 5" in result.stderr


def test_article_pages_give_the_body_when_enabled(kafka, server, tmp_path):
    ingestor, publisher = make_ingestor(kafka, f"sqlite:///{tmp_path}/s.db",
                                        [feed(server, "pages", "/articles.rss", articles=True)])
    result = ingestor.poll(ingestor.runtimes[0])
    publisher.close()
    assert result.error is None and result.published == 2
    by_title = {i.title: i for i in result.items}
    body = by_title["Quarry Peak Mining cuts copper output guidance"].body
    assert "flooding at its largest open-pit mine" in body and "tracking" not in body and "Copyright" not in body
    assert by_title["Broken link story"].body == "Only the summary."  # page 404: the item keeps its summary


def test_run_loop_polls_every_feed_and_stops_on_request(kafka, server, tmp_path):
    import threading

    ingestor, publisher = make_ingestor(kafka, f"sqlite:///{tmp_path}/s.db",
                                        [feed(server, "rss2", "/rss2"), feed(server, "html", "/html")])
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), kwargs={"workers": 2})
    thread.start()
    deadline = time.monotonic() + 30
    while (not server.hits("/rss2") or not server.hits("/html")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    thread.join(timeout=10)
    publisher.close()
    assert not thread.is_alive()
    state = {rt.feed.name: rt for rt in ingestor.runtimes}
    assert state["rss2"].failures == 0 and state["html"].failures == 1
    assert len(server.hits("/rss2")) == 1  # not due again within its 60 s interval
