from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from streams.ingest.normalize import canonical_url, make_item, parse_time, strip_html

NOW = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("url, canon", [
    ("HTTPS://News.Example.COM/a/b?utm_source=x&id=7&utm_medium=rss#top", "https://news.example.com/a/b?id=7"),
    ("http://example.com:80/x?fbclid=abc", "http://example.com/x"),
    ("https://example.com:8443/x", "https://example.com:8443/x"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com/p?b=2&a=1", "https://example.com/p?b=2&a=1"),
])
def test_canonical_url(url, canon):
    assert canonical_url(url) == canon


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x/y", "/relative/path", "", "http://"])
def test_non_http_urls_are_refused(url):
    assert canonical_url(url) is None


def test_strip_html():
    assert strip_html("<p>Fed &amp; ECB <b>hold</b></p><script>alert(1)</script>  rates") == "Fed & ECB hold rates"
    assert strip_html(None) == ""


def test_parse_time_variants():
    assert parse_time("2026-11-28T13:00:00+01:00") == NOW
    assert parse_time("2026-11-28T12:00:00Z") == NOW
    assert parse_time("Sat, 28 Nov 2026 12:00:00 GMT") == NOW
    assert parse_time(time.gmtime(NOW.timestamp())) == NOW
    assert parse_time("2026-11-28T12:00:00") == NOW  # naive is taken as UTC
    assert parse_time("soon") is None and parse_time(None) is None


def test_make_item_same_story_same_id_across_tracking_links():
    a = make_item(source="w", title="<b>Bank</b> fails", url="https://x.example/s?utm_source=a", body=None,
                  published="2026-11-28T12:00:00Z", fetched_at=NOW)
    b = make_item(source="other", title="Bank fails", url="https://X.example/s#frag", body="<p>t</p>",
                  published=None, fetched_at=NOW)
    assert a.id == b.id
    assert a.title == "Bank fails" and not a.published_estimated
    assert b.published_at == NOW and b.published_estimated and b.body == "t"


def test_make_item_without_url_hashes_source_and_title():
    a = make_item(source="w", title="T", url=None, body=None, published=None, fetched_at=NOW)
    b = make_item(source="v", title="T", url=None, body=None, published=None, fetched_at=NOW)
    assert a.id != b.id and a.url is None


def test_make_item_without_title_is_none():
    assert make_item(source="w", title="<p> </p>", url=None, body=None, published=None, fetched_at=NOW) is None
