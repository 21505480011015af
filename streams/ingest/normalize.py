"""Pure normalisation of raw news into ``NewsItem``: canonical URLs, clean text, UTC times."""

from __future__ import annotations

import calendar
import html
import re
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from moodwire.records import EARLIEST, NewsItem, item_id

TRACKING_PARAMS = {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "ref", "ref_src",
                   "cmpid", "ncid", "sr_share", "smid", "yclid", "_hsenc", "_hsmi", "mkt_tok"}
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_DROP_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def canonical_url(url: str) -> str | None:
    """Scheme and host lower-cased, default port, fragment and tracking parameters dropped.

    Returns None for anything that is not an absolute http(s) URL.
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS]
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, urlencode(query, doseq=True), ""))


def strip_html(text: str | None) -> str:
    """Plain text from an HTML fragment: script and style elements dropped, tags removed, entities decoded."""
    if not text:
        return ""
    text = _DROP_BLOCKS.sub(" ", text)
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def parse_time(value: object) -> datetime | None:
    """A publish time as an aware UTC datetime, from a ``time.struct_time`` (feedparser,
    already UTC), a datetime, or ISO-8601 text; None when absent or unparseable."""
    if value is None or value == "":
        return None
    if isinstance(value, time.struct_time):
        return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def make_item(*, source: str, title: str, url: str | None, body: str | None, published: object,
              fetched_at: datetime, lang: str | None = None, max_body: int = 20_000) -> NewsItem | None:
    """Build a normalised NewsItem, or None when there is no usable title."""
    clean_title = strip_html(title)[:2000]
    if not clean_title:
        return None
    canon = canonical_url(url) if url else None
    published_at = parse_time(published)
    if published_at is not None and published_at < EARLIEST:  # a zero date ("0001-01-01") is no date
        published_at = None
    clean_body = strip_html(body)[:max_body] or None
    return NewsItem(
        id=item_id(canon, source, clean_title), url=canon, source=source[:200], title=clean_title,
        body=clean_body, published_at=published_at or fetched_at, fetched_at=fetched_at,
        lang=(lang or None) and str(lang)[:16], published_estimated=published_at is None)
