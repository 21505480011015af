"""Targeted sentiment in the stream: each watchlist copy of a headline carries what the headline
says about that list's matched terms (the real entity head of a real model), keeps the
headline's own reading beside it, and reaches the store; topic records and models without the
entity head read as before."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import select

from models.serving.engine import InferenceEngine
from moodwire.records import NewsItem, ScoredNews, decode
from moodwire.store import open_store, scored_news
from moodwire.watchlists import Matcher, Watchlist
from streams.aggregate.store_sink import upsert_items
from streams.classify.targets import read_targets, surface_terms
from streams.classify.worker import classify_batch, keyed_records, score_items

NOW = datetime(2023, 3, 15, 10, 40, tzinfo=timezone.utc)
TITLE = "Silicon Valley Bank: HSBC announces rescue deal for SVB UK"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher([Watchlist(name="European banks", keywords=["HSBC", "UBS"], tickers=["$HSBC"]),
                    Watchlist(name="US regional banks", keywords=["SVB", "Silicon Valley Bank"]),
                    Watchlist(name="pound", regex=[r"\bsterling|pound\b"])])


@pytest.fixture(scope="module")
def engine(entity_model):
    engine = InferenceEngine(entity_model, device="cpu", int8=False, runtime="onnx")
    yield engine
    engine.close()


def _items(*titles: str) -> list[NewsItem]:
    return [NewsItem(id=hashlib.sha256(t.encode()).hexdigest(), url=f"https://example.com/{i}", source="test", title=t,
                     published_at=NOW, fetched_at=NOW) for i, t in enumerate(titles)]


def test_each_list_reads_its_own_terms_and_several_terms_are_averaged(engine, matcher):
    titles = [TITLE, "Sterling slides as the pound hits a low; $HSBC flat", "Fed holds rates"]
    items = _items(*titles)
    predictions, targets = classify_batch(engine, matcher, engine.prepare(titles), titles)
    assert set(targets[0]) == {"European banks", "US regional banks"} and targets[2] == {}
    us = targets[0]["US regional banks"]
    assert us.terms == ["Silicon Valley Bank", "SVB"]  # in the order the title has them
    alone = engine.read_targets([TITLE, TITLE], ["Silicon Valley Bank", "SVB"])
    assert np.allclose([us.probs[k] for k in engine.spec.sentiment_labels], alone.mean(0), atol=1e-5)
    assert us.score == pytest.approx(us.probs["positive"] - us.probs["negative"])
    eu = targets[0]["European banks"]
    assert eu.terms == ["HSBC"]  # HSBC and $HSBC are read once
    [hsbc] = engine.read_targets([TITLE], ["HSBC"])
    assert np.allclose([eu.probs[k] for k in engine.spec.sentiment_labels], hsbc, atol=1e-5)
    assert targets[1]["pound"].terms == ["Sterling"]  # a regex is read as the text it matched
    scored = score_items(items, predictions, engine.label, matcher, targets=targets)
    assert scored[0].watchlists == ["European banks", "US regional banks"] and scored[0].targets == targets[0]


def test_watchlist_copies_fold_the_targeted_reading_and_keep_the_headlines(engine, matcher):
    [item] = _items(TITLE)
    predictions, targets = classify_batch(engine, matcher, engine.prepare([TITLE]), [TITLE])
    [scored] = score_items([item], predictions, engine.label, matcher, targets=targets)
    records = dict((key.decode(), record) for key, record in keyed_records([scored]))
    topic = records[scored.topic]
    assert topic.score == predictions[0].score and topic.headline is None
    for name in scored.watchlists:
        copy = records["watchlist:" + name]
        assert copy.watchlist == name
        assert (copy.score, copy.sentiment, copy.probs) == (targets[0][name].score, targets[0][name].sentiment,
                                                             targets[0][name].probs)
        assert copy.headline.score == predictions[0].score and copy.headline.sentiment == predictions[0].sentiment
        assert decode(ScoredNews, copy.encode()) == copy


def test_a_model_without_the_entity_head_gives_every_copy_the_headlines_reading(tiny_model, matcher):
    engine = InferenceEngine(tiny_model, device="cpu", int8=False, runtime="onnx")
    [item] = _items(TITLE)
    predictions, targets = classify_batch(engine, matcher, engine.prepare([TITLE]), [TITLE])
    assert targets == [{}]
    [scored] = score_items([item], predictions, engine.label, matcher, targets=targets)
    for _, record in keyed_records([scored]):
        assert record.score == predictions[0].score and record.headline is None


def test_a_record_from_before_targeted_sentiment_still_reads(engine, matcher):
    [item] = _items(TITLE)
    predictions, targets = classify_batch(engine, matcher, engine.prepare([TITLE]), [TITLE])
    [scored] = score_items([item], predictions, engine.label, matcher, targets=targets)
    old = scored.model_dump(mode="json", exclude={"targets", "headline"})
    read = ScoredNews.model_validate(old)
    assert read.targets == {} and read.for_watchlist("US regional banks").score == scored.score


def test_the_store_keeps_each_lists_reading_beside_the_headlines(engine, matcher, tmp_path):
    items = _items(TITLE, "Fed holds rates")
    predictions, targets = classify_batch(engine, matcher, engine.prepare([i.title for i in items]),
                                          [i.title for i in items])
    scored = score_items(items, predictions, engine.label, matcher, targets=targets)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    upsert_items(store, [record for _, record in keyed_records(scored)])
    with store.connect() as conn:
        rows = {r.title: r for r in conn.execute(select(scored_news))}
    assert rows[TITLE].score == scored[0].score
    assert rows[TITLE].targets == {name: t.model_dump(mode="json") for name, t in targets[0].items()}
    assert rows["Fed holds rates"].targets is None


def test_surface_terms_keep_file_order_and_drop_repeats(matcher):
    assert surface_terms(matcher, "HSBC and $HSBC rally; UBS too", None) == {"European banks": ["HSBC", "UBS"]}
    assert read_targets(None, matcher, [TITLE], ["Financials"]) == [{}]


def test_preparing_a_batch_while_targets_are_read_is_safe(engine):
    """classify prepares batch N+1 on its main thread while the inference thread reads batch N's
    targets: both use the one Rust tokenizer, each call reconfiguring its truncation."""
    from concurrent.futures import ThreadPoolExecutor

    long_titles = [("word " * 120) + str(i) for i in range(32)]
    pairs = ([TITLE] * 8, ["HSBC", "SVB", "Silicon Valley Bank", "UK", "deal", "rescue", "HSBC UK", "bank"])
    want_ids = [b[1].tolist() for b in engine.prepare(long_titles).batches]
    want_targets = engine.read_targets(*pairs)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [(pool.submit(engine.prepare, long_titles), pool.submit(engine.read_targets, *pairs))
                   for _ in range(40)]
        prepared, read = [p for p, _ in futures], [r for _, r in futures]
        assert all([b[1].tolist() for b in f.result().batches] == want_ids for f in prepared)
        assert all(np.allclose(f.result(), want_targets, atol=1e-6) for f in read)
