"""Turning one poll of one feed into normalised news items (RSS 0.9x/1.0/2.0, Atom)."""

from __future__ import annotations

from datetime import datetime

import feedparser

from moodwire.records import NewsItem
from moodwire.errors import FetchError
from streams.ingest.fetch import PoliteClient, Response
from streams.ingest.normalize import make_item
from streams.ingest.sources import Feed


def parse_feed(feed: Feed, response: Response, fetched_at: datetime) -> list[NewsItem]:
    """Items of a fetched feed document; FetchError when it is not a feed."""
    head = response.body[:512].lstrip().lower()
    parsed = feedparser.parse(response.body, response_headers={"content-type": response.content_type or "application/xml"})
    if not parsed.entries and not parsed.get("version"):
        _not_a_feed(feed, response, parsed, head)
    lang = feed.lang or parsed.feed.get("language") or None
    items = []
    for entry in parsed.entries:
        body = None
        if entry.get("content"):
            body = entry.content[0].get("value")
        body = body or entry.get("summary") or entry.get("description")
        published = entry.get("published_parsed") or entry.get("updated_parsed") or entry.get("created_parsed")
        item = make_item(source=feed.name, title=entry.get("title", ""), url=entry.get("link"), body=body,
                         published=published, fetched_at=fetched_at, lang=lang)
        if item is not None:
            items.append(item)
    if parsed.get("bozo") and not items:  # broken XML that yielded nothing usable
        _not_a_feed(feed, response, parsed, head)
    return items


def _not_a_feed(feed: Feed, response: Response, parsed, head: bytes) -> None:
    if "html" in response.content_type.lower() or head.startswith((b"<!doctype html", b"<html")):
        raise FetchError(feed.name, "returned an HTML page, not an RSS/Atom feed", retryable=False)
    reason = parsed.get("bozo_exception") or "no entries, unknown format"
    raise FetchError(feed.name, f"not a valid RSS/Atom feed ({reason})", retryable=False)


def article_text(client: PoliteClient, feed: Feed, url: str) -> str | None:
    """Main text of an article page via trafilatura; None when the page yields nothing."""
    try:
        import trafilatura
    except ImportError:
        raise FetchError(feed.name, "articles: true needs trafilatura (pip install 'moodwire[articles]')",
                         retryable=False) from None
    page = client.get(feed.name, url, timeout=feed.timeout, max_bytes=feed.max_bytes, headers=feed.headers)
    return trafilatura.extract(page.body.decode("utf-8", errors="replace"), include_comments=False) or None
