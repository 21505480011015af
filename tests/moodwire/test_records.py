from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError
from hypothesis import given, settings, strategies as st

from moodwire.errors import RecordError
from moodwire.records import (AlertEvent, DeadLetter, Evidence, NewsItem, ScoredNews, Strong, TopicWindow, decode,
                              item_id)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def news(**over) -> NewsItem:
    base = dict(id=item_id("https://ex.com/a", "ex", "t"), url="https://ex.com/a", source="ex",
                title="Bank shares slide", body=None, published_at=NOW, fetched_at=NOW, lang="en")
    base.update(over)
    return NewsItem(**base)


def scored(**over) -> ScoredNews:
    base = news().model_dump()
    base.update(topic="Financials", topic_confidence=0.9, sentiment="negative",
                probs={"negative": 0.7, "neutral": 0.2, "positive": 0.1}, score=-0.6,
                model="moodwire-minilm@1", classified_at=NOW)
    base.update(over)
    return ScoredNews(**base)


def test_item_id_is_sha256_of_url_or_source_and_title():
    assert item_id("https://a/b", "s", "t") == item_id("https://a/b", "other", "other")
    assert item_id(None, "s", "t") != item_id(None, "s", "u")
    assert len(item_id(None, "s", "t")) == 64


@pytest.mark.parametrize("record", [
    news(), scored(),
    TopicWindow(topic="Macro", window="5m", start=NOW, end=NOW.replace(minute=5), count=3, mean_score=-0.2,
                sum_sq=0.5, negative_share=0.5, neutral_share=0.25, positive_share=0.25),
    AlertEvent(fingerprint="f", rule="r", topic="Macro", status="firing", value=-0.5, threshold=-0.3,
               window="1h", starts_at=NOW, seq=1),
    DeadLetter.of("classify", "news.raw", 0, 12, "bad", b"\xff\x00"),
])
def test_encode_decode_roundtrip(record):
    assert decode(type(record), record.encode()) == record


def test_times_are_utc_iso_with_z():
    item = news(published_at=datetime.fromisoformat("2026-11-28T13:00:00+01:00"))
    data = json.loads(item.encode())
    assert data["published_at"] == "2026-11-28T12:00:00.000Z"


def test_times_hold_milliseconds_so_encode_decode_round_trips():
    item = news(published_at=datetime.fromisoformat("2026-11-28T13:00:00.123456+01:00"),
                fetched_at=datetime.fromisoformat("2026-11-28T12:00:00.5Z"))
    assert item.published_at == datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=timezone.utc)
    assert item.fetched_at == datetime(2026, 11, 28, 12, 0, 0, 500000, tzinfo=timezone.utc)
    assert item.published_at.tzinfo is timezone.utc and item.fetched_at.tzinfo is timezone.utc
    assert decode(NewsItem, item.encode()) == item


@pytest.mark.parametrize("payload, fragment", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (None, "empty message"),
    (b"{}", "id: Field required"),
    (json.dumps({**json.loads(news().encode()), "published_at": "yesterday"}).encode(), "published_at"),
    (json.dumps({**json.loads(news().encode()), "published_at": "2026-11-28T12:00:00"}).encode(), "time zone"),
    (json.dumps({**json.loads(news().encode()), "title": 42}).encode(), "title"),
    (json.dumps({**json.loads(news().encode()), "extra": 1}).encode(), "extra: Extra inputs are not permitted"),
    (json.dumps({**json.loads(news().encode()), "id": "XYZ"}).encode(), "id: String should match pattern"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
])
def test_bad_payloads_raise_record_error(payload, fragment):
    with pytest.raises(RecordError) as err:
        decode(NewsItem, payload)
    assert fragment in str(err.value)


def test_ten_megabyte_payload_is_refused_without_parsing():
    payload = b'{"title": "' + b"x" * 10_000_000 + b'"}'
    with pytest.raises(RecordError, match="exceeds the 1000000-byte limit"):
        decode(NewsItem, payload)


def test_scored_news_checks_probabilities():
    good = json.loads(scored().encode())
    for bad, fragment in [({"negative": 0.9, "neutral": 0.9, "positive": 0.1}, "sum to"),
                          ({"negative": 1.0}, "exactly negative, neutral and positive")]:
        with pytest.raises(RecordError, match=fragment):
            decode(ScoredNews, json.dumps({**good, "probs": bad}))
    with pytest.raises(RecordError, match="score"):
        decode(ScoredNews, json.dumps({**good, "score": 1.5}))
    with pytest.raises(RecordError, match="sentiment"):
        decode(ScoredNews, json.dumps({**good, "sentiment": "bullish"}))


def test_window_end_after_start():
    with pytest.raises(RecordError, match="end must be after its start"):
        decode(TopicWindow, json.dumps({"topic": "M", "window": "5m", "start": "2026-01-01T00:05:00Z",
                                        "end": "2026-01-01T00:00:00Z", "count": 0, "mean_score": 0,
                                        "negative_share": 0, "positive_share": 0}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_escape_as_other_errors(payload):
    try:
        decode(ScoredNews, payload)
    except RecordError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
                    max_leaves=30))
def test_arbitrary_json_values_never_escape_as_other_errors(value):
    try:
        decode(AlertEvent, json.dumps(value))
    except RecordError:
        pass


@settings(max_examples=100, deadline=None)
@given(title=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=300),
       source=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=50))
def test_any_unicode_title_roundtrips(title, source):
    item = news(title=title, source=source, id=item_id(None, source, title), url=None)
    assert decode(NewsItem, item.encode()) == item


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["Bank", " ", "é", "\x00", "\x07", "\x1b", "\x7f", "\t", "\n", "\ud800", "\udfff"]),
                min_size=1, max_size=12))
def test_text_no_store_can_hold_is_cleaned_on_decode(parts):
    """NUL and the other control characters (but tab, line feed, carriage return) are dropped and a
    lone surrogate becomes U+FFFD, from a record on the wire as from one built here; a title left
    empty is refused like any empty title."""
    raw = "".join(parts)
    payload = json.dumps({"id": "a" * 64, "source": "feed", "title": raw, "published_at": "2026-01-01T00:00:00Z",
                          "fetched_at": "2026-01-01T00:00:00Z"})
    # as the wire carries it: a high surrogate followed by a low one is a pair, one character
    on_wire = json.loads(payload)["title"]
    want = "".join("" if ch in "\x00\x07\x1b\x7f" else "\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch
                   for ch in on_wire)
    if not want:
        with pytest.raises(RecordError, match="title"):
            decode(NewsItem, payload.encode())
        return
    item = decode(NewsItem, payload.encode())
    assert item.title == want and item.title.encode("utf-8").decode("utf-8") == want
    assert decode(NewsItem, item.encode()) == item


def test_trusted_records_equal_validated_ones_and_need_every_field():
    values = dict(topic="Macro", window="1h", start=datetime(2026, 11, 20, 9, tzinfo=timezone.utc),
                  end=datetime(2026, 11, 20, 10, tzinfo=timezone.utc), count=4, mean_score=-0.25, sum_sq=1.5,
                  negative_share=0.5, neutral_share=0.25, positive_share=0.25, late_count=1, most_negative=["a"],
                  most_positive=["b"], evidence=[], final=True, kind="topic",
                  strong=[Strong(below=-0.5, count=1, first=[])])
    trusted = TopicWindow.trusted(**values)
    assert trusted == TopicWindow(**values) and trusted.model_fields_set == set(values)
    assert decode(TopicWindow, trusted.encode()) == trusted
    with pytest.raises(ValidationError, match="frozen"):
        trusted.count = 5  # frozen like any record
    del values["final"]
    with pytest.raises(TypeError, match=r"needs every field: missing \['final'\]"):
        TopicWindow.trusted(**values)


def test_a_dead_letter_cuts_a_huge_payload_and_says_where_the_whole_record_is():
    import base64
    import hashlib

    from moodwire.records import MAX_DEAD_PAYLOAD, DeadLetter

    small = DeadLetter.of("classify", "news.raw", 2, 41, "NewsItem: bad", b"{oops")
    assert base64.b64decode(small.payload_b64) == b"{oops" and small.error == "NewsItem: bad"
    huge = b"x" * 999_000
    letter = DeadLetter.of("classify", "news.raw", 2, 42, "NewsItem: payload is not JSON", huge)
    assert base64.b64decode(letter.payload_b64) == huge[:MAX_DEAD_PAYLOAD]
    assert letter.error.startswith(f"NewsItem: payload is not JSON (payload cut to its first {MAX_DEAD_PAYLOAD} of "
                                   "999000 bytes")
    assert hashlib.sha256(huge).hexdigest() in letter.error and "news.raw[2]@42" in letter.error
    assert len(letter.encode()) < 250_000  # well inside a broker's default 1 MB message limit
    assert decode(DeadLetter, letter.encode()) == letter


def test_records_from_before_watchlists_still_decode_and_carry_their_key():
    old = ScoredNews(id="a" * 64, source="wire", title="Bank shares slide", published_at=datetime(2026, 11, 20, tzinfo=timezone.utc),
                     fetched_at=datetime(2026, 11, 20, tzinfo=timezone.utc), topic="Financials", topic_confidence=0.9,
                     sentiment="negative", probs={"negative": 0.8, "neutral": 0.1, "positive": 0.1}, score=-0.7,
                     model="m@1", classified_at=datetime(2026, 11, 20, tzinfo=timezone.utc))
    payload = json.loads(old.encode())
    del payload["watchlists"], payload["watchlist"]
    decoded = decode(ScoredNews, json.dumps(payload).encode())
    assert decoded.watchlists == [] and decoded.watchlist is None and decoded.key == "Financials"
    copy = decoded.model_copy(update={"watchlists": ["US regional banks"], "watchlist": "US regional banks"})
    assert decode(ScoredNews, copy.encode()).key == "watchlist:US regional banks"


_evidence = st.builds(Evidence, id=st.text(min_size=1, max_size=8), title=st.text(max_size=40),
                      url=st.none() | st.just("https://example.com/a?b=\"c\""),
                      score=st.floats(-1, 1, allow_nan=False),
                      published_at=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                                                timezones=st.just(timezone.utc)))


@settings(max_examples=150, deadline=None)
@given(evidence=st.lists(_evidence, max_size=6),
       ladder=st.none() | st.lists(st.lists(_evidence, max_size=5), max_size=5),
       final=st.booleans(), kind=st.sampled_from(["topic", "watchlist"]), topic=st.text(min_size=1, max_size=20))
def test_a_window_encodes_to_the_bytes_pydantic_writes_with_shared_entries_spliced_in(evidence, ladder, final, kind,
                                                                                      topic):
    """TopicWindow.encode splices in the JSON of its ladder entries, remembered per object: the
    bytes are model_dump_json's, the first time and when the same entry objects appear in
    another window; a window that does not count (None) or has nothing below (empty) too."""
    strong = None if ladder is None else [Strong(below=-0.5 - i / 10, count=len(first) + 1, first=first)
                                          for i, first in enumerate(ladder)]
    start = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
    windows = [TopicWindow(topic=topic, window=name, start=start, end=start.replace(hour=10), count=3, mean_score=-0.2,
                           negative_share=0.5, positive_share=0.5, evidence=evidence, final=final, kind=kind,
                           strong=strong) for name in ("1h", "24h")]
    for window in windows:
        assert window.encode() == window.model_dump_json().encode("utf-8")
        assert decode(TopicWindow, window.encode()) == window
