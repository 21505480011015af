"""``moodwire ingest``: poll every configured feed, publish new items to news.raw.

Each feed is polled on its own schedule by a small thread pool. A feed that is
down, slow, too large, or not a feed is logged with its name and retried with
exponential back-off; it never stops the other feeds. Items are marked as seen
only after Kafka acknowledged them, so a crash re-publishes at most the last poll
(the downstream sinks upsert by id) and a restart does not re-flood the topic.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from moodwire.errors import BrokerError, FetchError
from moodwire.publish import Publisher
from moodwire.records import NewsItem
from moodwire.topics import NEWS_RAW
from streams.ingest.feeds import article_text, parse_feed
from streams.ingest.fetch import PoliteClient
from streams.ingest.seen import SeenStore
from streams.ingest.sources import Feed

log = logging.getLogger("moodwire.ingest")


@dataclass
class FeedRuntime:
    feed: Feed
    failures: int = 0
    next_due: float = 0.0
    etag: str | None = None
    last_modified: str | None = None
    last_error: str | None = None


@dataclass
class PollResult:
    feed: str
    fetched: int = 0
    published: int = 0
    duplicates: int = 0
    not_modified: bool = False
    error: str | None = None
    items: list[NewsItem] = field(default_factory=list)


class Ingestor:
    def __init__(self, feeds: list[Feed], client: PoliteClient, seen: SeenStore, publisher: Publisher,
                 metrics=None) -> None:
        self.client, self.seen, self.publisher, self.metrics = client, seen, publisher, metrics
        self.runtimes = []
        for feed in feeds:
            etag, modified = seen.validators(feed.name)
            self.runtimes.append(FeedRuntime(feed, etag=etag, last_modified=modified))

    def poll(self, rt: FeedRuntime) -> PollResult:
        """One poll of one feed; never raises for a feed problem (it is logged and backed off)."""
        feed = rt.feed
        result = PollResult(feed.name)
        try:
            result = self._poll(rt)
            rt.failures, rt.last_error = 0, None
            rt.next_due = time.monotonic() + feed.interval
        except FetchError as exc:
            self._failed(rt, exc.reason, result)
        except BrokerError as exc:  # Kafka unavailable: nothing was marked seen, retry later
            self._failed(rt, str(exc), result)
        except Exception as exc:  # a defect on one feed's content must not stop the others
            log.exception("feed %s: unexpected error while polling", feed.name, extra={"feed": feed.name})
            self._failed(rt, f"{type(exc).__name__}: {exc}", result)
        self.seen.save_validators(feed.name, rt.etag, rt.last_modified, rt.failures, rt.last_error)
        if self.metrics:
            self.metrics.record_poll(result)
        return result

    def _failed(self, rt: FeedRuntime, reason: str, result: PollResult) -> None:
        rt.failures += 1
        rt.last_error = reason
        backoff = min(rt.feed.interval * 2 ** (rt.failures - 1), rt.feed.max_backoff) * random.uniform(0.9, 1.1)
        rt.next_due = time.monotonic() + backoff
        result.error = reason
        log.warning("feed %s skipped: %s (failure %d, next try in %.0f s)", rt.feed.name, reason, rt.failures,
                    backoff, extra={"feed": rt.feed.name})

    def _poll(self, rt: FeedRuntime) -> PollResult:
        feed = rt.feed
        fetched_at = datetime.now(timezone.utc)
        response = self.client.get(feed.name, str(feed.url), timeout=feed.timeout, max_bytes=feed.max_bytes,
                                   headers=feed.headers, etag=rt.etag, last_modified=rt.last_modified)
        result = PollResult(feed.name)
        if response.status == 304:
            result.not_modified = True
            log.info("feed %s not modified", feed.name, extra={"feed": feed.name})
            return result
        items = list({item.id: item for item in parse_feed(feed, response, fetched_at)}.values())
        result.fetched = len(items)
        new_ids = self.seen.unseen(i.id for i in items)
        new = [i for i in items if i.id in new_ids]
        result.duplicates = len(items) - len(new)
        if feed.articles:
            new = [self._with_article(feed, item) for item in new]
        if new:
            self.publisher.publish(NEWS_RAW, [(i.id.encode(), i) for i in new])
            self.seen.mark((i.id, i.source) for i in new)
        rt.etag, rt.last_modified = response.etag, response.last_modified
        result.published, result.items = len(new), new
        log.info("feed %s: %d items, %d new, %d already seen", feed.name, result.fetched, len(new),
                 result.duplicates, extra={"feed": feed.name, "count": len(new)})
        return result

    def _with_article(self, feed: Feed, item: NewsItem) -> NewsItem:
        if not item.url:
            return item
        try:
            text = article_text(self.client, feed, item.url)
        except FetchError as exc:
            if not exc.retryable and "trafilatura" in exc.reason:
                raise
            log.warning("feed %s: article %s kept without page text: %s", feed.name, item.url, exc.reason,
                        extra={"feed": feed.name, "item_id": item.id})
            return item
        return item.model_copy(update={"body": text[:20_000]}) if text else item

    def run(self, stop: threading.Event, workers: int = 4) -> None:
        """Poll every feed when due until ``stop`` is set."""
        running: dict[str, Future] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feed") as pool:
            while not stop.is_set():
                now = time.monotonic()
                for rt in self.runtimes:
                    busy = running.get(rt.feed.name)
                    if busy is not None and busy.done() and busy.exception() is not None:
                        # poll() handles feed problems itself; what reaches here is the store failing.
                        log.error("feed %s: poll failed: %s", rt.feed.name, busy.exception(),
                                  extra={"feed": rt.feed.name})
                        running.pop(rt.feed.name)
                        rt.next_due = now + min(rt.feed.interval, 60.0)
                        busy = None
                    if rt.next_due <= now and (busy is None or busy.done()):
                        rt.next_due = float("inf")  # set again when the poll ends
                        running[rt.feed.name] = pool.submit(self.poll, rt)
                due = min((rt.next_due for rt in self.runtimes), default=now + 1)
                stop.wait(max(0.05, min(1.0, due - time.monotonic())))
        self.seen.purge()
