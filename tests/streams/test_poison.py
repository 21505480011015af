"""A poison record — one whose processing fails every time — goes to the dead letter after a
bounded number of tries, and classify goes on: the real worker on a real broker with the real
(tiny) model, and a fault injected into the model for some titles."""

from __future__ import annotations

import base64
import threading

import pytest

from models.serving.engine import InferenceEngine
from moodwire.records import NewsItem, item_id
from moodwire.settings import load_settings
from moodwire.topics import DEADLETTER, NEWS_SCORED
from streams.classify.worker import ClassifyWorker
from tests.streams.test_classify import T0, collect, dead_of, items, produce, scored_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class FailsOn(InferenceEngine):
    """The real engine, failing whenever a batch holds a title with ``marker`` (a fault
    injected for the test: no real title is known to break the model)."""

    def __init__(self, *args, marker: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marker, self.calls = marker, 0

    def prepare(self, texts):
        return texts, super().prepare(texts)

    def run(self, prepared):
        texts, inner = prepared
        self.calls += 1
        if any(self.marker in t for t in texts):
            raise RuntimeError(f"injected failure on {self.marker}")
        return super().run(inner)


def test_a_poison_item_is_dead_lettered_after_two_tries_and_the_batch_goes_on(kafka, tiny_model, unique):
    news = items(unique, 30)
    poison = [NewsItem(id=item_id(None, "test", f"POISON {unique} {i}"), source="test", title=f"POISON {unique} {i}",
                       published_at=T0, fetched_at=T0) for i in range(2)]
    produce(kafka, news[:10] + [poison[0]] + news[10:20] + [poison[1]] + news[20:])
    settings = load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": kafka, "MOODWIRE_MAX_BATCH": "8",
                                      "MOODWIRE_MAX_WAIT_MS": "50"})
    engine = FailsOn(tiny_model, device="cpu", int8=False, marker=f"POISON {unique}")
    worker = ClassifyWorker(settings, engine, group_id=f"poison-{unique}")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        scored = collect(kafka, NEWS_SCORED, scored_of({i.id for i in news + poison}), len(news))
        dead = collect(kafka, DEADLETTER, dead_of(f"POISON {unique}"), 2)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    assert sorted(s.id for s, _ in scored) == sorted(i.id for i in news)  # every healthy item, once
    assert sorted(d.payload_b64 for d in dead) == sorted(base64.b64encode(p.encode()).decode() for p in poison)
    for letter in dead:
        assert letter.stage == "classify" and letter.reason == "failed" and letter.offset is not None
        assert "failed twice, in its batch and alone" in letter.error and "injected failure" in letter.error
