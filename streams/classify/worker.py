"""``moodwire classify``: a consumer group on news.raw feeding the batched inference engine.

A batch closes at ``max_batch`` records or ``max_wait_ms`` after its first record. While
the model runs on batch N (a worker thread), the main thread polls, decodes and tokenises
batch N+1; while the model runs on N+1, the main thread publishes and commits N. Batch N's
scored items and dead letters are published and acknowledged before its offsets are committed: a crash at any moment re-delivers at most the uncommitted
batches (at-least-once; sinks upsert by item id), never loses an item.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from moodwire.errors import RecordError, StreamError
from moodwire.kafka import commit_or_redeliver, consumer_config
from moodwire.metrics import StageMetrics
from moodwire.publish import Publisher
from moodwire.records import DeadLetter, InputProgress, NewsItem, ScoredNews, TargetReading, decode
from moodwire.settings import Settings
from moodwire.topics import DEADLETTER, NEWS_RAW, NEWS_SCORED
from streams.classify.inputs import InputClock, scan_published
from streams.classify.targets import read_targets

log = logging.getLogger("moodwire.classify")
GROUP_ID = "moodwire-classify"


@dataclass
class Batch:
    items: list[NewsItem] = field(default_factory=list)
    where: list[tuple[str, int, int]] = field(default_factory=list)  # each item's topic, partition, offset
    input_times: list[datetime | None] = field(default_factory=list)  # each item's input time (I8)
    inputs: dict[int, InputProgress] = field(default_factory=dict)  # the news.raw partitions as the batch began (I8)
    metadata: dict[TopicPartition, str] = field(default_factory=dict)  # committed with its offsets
    dead: list[DeadLetter] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    opened: float = 0.0

    def __len__(self) -> int:
        return len(self.items) + len(self.dead)


def score_items(items: list[NewsItem], predictions, model_label: str, matcher=None,
                stamps: list[tuple[int, datetime | None]] | None = None,
                inputs: dict[int, InputProgress] | None = None,
                targets: list[dict[str, TargetReading]] | None = None) -> list[ScoredNews]:
    """Items with the model's predictions and, given a watchlist ``Matcher``, the watchlists
    each title matches (restricted by topic where a watchlist says so) with ``targets``, the
    reading toward each (``streams.classify.targets``). ``stamps``: each item's
    news.raw partition and input time, and ``inputs`` the partitions held (I8,
    ``streams.classify.inputs``)."""
    now = datetime.now(timezone.utc)
    stamps = stamps if stamps is not None else [(None, None)] * len(items)
    targets = targets if targets is not None else [{} for _ in items]
    return [ScoredNews(**item.model_dump(), topic=p.topic, topic_confidence=p.topic_confidence,
                       sentiment=p.sentiment, probs=p.probs, score=p.score, model=model_label,
                       classified_at=now, watchlists=matcher.match(item.title, p.topic) if matcher else [],
                       source_partition=partition, input_time=at, inputs=inputs or {}, targets=reading)
            for item, p, (partition, at), reading in zip(items, predictions, stamps, targets)]


def classify_batch(engine, matcher, prepared, titles: list[str]) -> tuple[list, list[dict[str, TargetReading]]]:
    """A prepared batch's predictions and the targeted readings of the watchlists its titles
    match (one more engine call, for the matched titles only)."""
    predictions = engine.run(prepared)
    return predictions, read_targets(engine, matcher, titles, [p.topic for p in predictions])


def keyed_records(scored: list[ScoredNews]) -> list[tuple[bytes, ScoredNews]]:
    """news.scored records of scored items: each item keyed by its topic, and once more per
    watchlist it matched, keyed ``watchlist:NAME`` with ``watchlist`` set, so that the aggregate
    worker folds every key's items on one partition. In publish-time order: a batch gathers
    several news.raw partitions, and a rule judged early (alerts/evaluate.py) starts its alert
    at the headline that made its count, which the aggregate can only see as the back-test
    does when each key's headlines reach it in publish order."""
    out = []
    for item in sorted(scored, key=lambda i: i.published_at):  # stable: ties keep their order
        out.append((item.topic.encode(), item))
        for name in item.watchlists:
            copy = item.for_watchlist(name)
            out.append((copy.key.encode(), copy))
    return out


class _Rebalance(ConsumerRebalanceListener):
    """Partitions move with their input time (I8): forgotten when revoked; when assigned, marked
    to be read from the committed offset's metadata (``ClassifyWorker._restore``, after the poll:
    kafka-python runs this listener on its IO thread, where no blocking call is allowed)."""

    def __init__(self, worker: "ClassifyWorker") -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked) -> None:
        self.worker.inputs.forget(tp.partition for tp in revoked)
        self.worker.to_restore.difference_update(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self.worker.to_restore.update(assigned)


class ClassifyWorker:
    def __init__(self, settings: Settings, engine, metrics: StageMetrics | None = None,
                 group_id: str = GROUP_ID, source_topic: str = NEWS_RAW, matcher=None) -> None:
        self.settings, self.engine, self.matcher = settings, engine, matcher
        self.metrics = metrics or StageMetrics("classify")
        self.max_batch, self.max_wait = settings.max_batch, settings.max_wait_ms / 1000
        self.source_topic = source_topic
        self.inputs = InputClock(settings.future_tolerance)
        self.to_restore: set[TopicPartition] = set()  # assigned, input time not yet read (_Rebalance)
        self.scan_config = {k: v for k, v in consumer_config(settings, group_id, "moodwire-classify-scan").items()
                            if k != "group_id"}
        try:
            self.consumer = KafkaConsumer(**consumer_config(settings, group_id, "moodwire-classify"),
                                          max_poll_records=settings.max_batch)
            self.consumer.subscribe([source_topic], listener=_Rebalance(self))
        except KafkaError as exc:
            raise StreamError(f"cannot join consumer group {group_id} on {settings.kafka_bootstrap}: {exc}") from None
        self.publisher = Publisher(settings, "moodwire-classify")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infer")

    def _collect(self, stop: threading.Event) -> Batch:
        batch = Batch()
        before = dict(self.inputs.newest)  # each partition's input time before this batch (I8)
        while not stop.is_set() and len(batch) < self.max_batch:
            # An empty batch waits at most 0.5 s (then the caller finishes what is pending);
            # an open batch waits until max_wait after its first record.
            remaining = self.max_wait - (time.monotonic() - batch.opened) if len(batch) else 0.5
            if remaining <= 0:
                break
            # Rounded up, never to 0 ms: on Apache Kafka a kafka-python 3.0 member that polls with 0 ms
            # during a rebalance can stay stuck in it for tens of seconds; 1 ms does not.
            polled = self.consumer.poll(timeout_ms=math.ceil(remaining * 1000), max_records=self.max_batch - len(batch))
            if self.to_restore:
                self._restore()
            if not polled and not len(batch):
                break
            for tp, records in polled.items():
                for rec in records:
                    if not len(batch):
                        batch.opened = time.monotonic()
                    try:
                        item = decode(NewsItem, rec.value)
                        batch.input_times.append(self.inputs.advance(tp.partition, item.published_at))
                        batch.items.append(item)
                        batch.where.append((tp.topic, tp.partition, rec.offset))
                    except RecordError as exc:
                        batch.dead.append(DeadLetter.of("classify", tp.topic, tp.partition, rec.offset, str(exc),
                                                        rec.value))
                        log.warning("dead-lettered %s[%d]@%d: %s", tp.topic, tp.partition, rec.offset, exc,
                                    extra={"partition": tp.partition, "offset": rec.offset})
                    batch.offsets[tp] = rec.offset + 1
        self.metrics.record_lag(self.consumer)
        if len(batch):
            batch.metadata = {tp: self.inputs.metadata(tp.partition) for tp in batch.offsets}
            behind = {p: left or TopicPartition(self.source_topic, p) in batch.offsets
                      for p, left in self._behind().items()}
            batch.inputs = self.inputs.view(before, behind, self.consumer.partitions_for_topic(self.source_topic) or ())
        return batch

    def _restore(self) -> None:
        """The input time of each newly assigned partition, from its committed offset's metadata,
        or rebuilt by reading the partition up to that offset where the commit carries none."""
        for tp in sorted(self.to_restore):
            committed = self.consumer.committed(tp, metadata=True)
            if committed is None:
                self.inputs.rebuild(tp.partition, ())  # never committed: read from the start
            elif not self.inputs.restore(tp.partition, committed.metadata):
                started = time.monotonic()
                self.inputs.rebuild(tp.partition, scan_published(self.scan_config, tp.topic, tp.partition,
                                                                 committed.offset))
                log.info("%s[%d]: input time rebuilt from its %d records before the committed offset in %.1f s "
                         "(the commit carries no metadata)", tp.topic, tp.partition, committed.offset,
                         time.monotonic() - started)
        self.to_restore.clear()

    def _behind(self) -> dict[int, bool]:
        """Per news.raw partition held: whether records remain unread on it (an unknown end
        counts as behind: a partition not fetched yet may hold a backlog)."""
        out = {}
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            out[tp.partition] = end is None or self.consumer.position(tp) < end
        return out

    def _stamps(self, batch: Batch) -> list[tuple[int, datetime | None]]:
        return [(partition, at) for (_, partition, _), at in zip(batch.where, batch.input_times)]

    def _scored(self, batch: Batch, future: Future | None) -> list[ScoredNews]:
        """The batch's items scored. A batch that fails (the model or the scoring raised) is
        tried again item by item: an item that fails alone too — its second try — is a poison
        record, dead-lettered with the error (reason ``failed``), and the stage goes on."""
        try:  # a batch without decodable items had nothing to infer (no future)
            predictions, targets = future.result() if future is not None else ([], [])
            return score_items(batch.items, predictions, self.engine.label, self.matcher, self._stamps(batch),
                               batch.inputs, targets)
        except Exception as exc:  # noqa: BLE001 - any failure: isolate the record that causes it
            log.warning("a batch of %d items failed (%r): each is tried alone", len(batch.items), exc)
            self.metrics.errors.labels("batch_failed").inc()
        scored = []
        for item, (topic, partition, offset), stamp in zip(batch.items, batch.where, self._stamps(batch)):
            try:
                predictions, targets = classify_batch(self.engine, self.matcher, self.engine.prepare([item.title]),
                                                      [item.title])
                scored += score_items([item], predictions, self.engine.label, self.matcher, [stamp], batch.inputs,
                                      targets)
            except Exception as exc:  # noqa: BLE001 - this record fails on its own: dead-lettered
                batch.dead.append(DeadLetter.of("classify", topic, partition, offset,
                                                f"failed: classifying item {item.id} failed twice, in its batch and "
                                                f"alone: {exc!r}", item.encode(), "failed"))
                log.error("dead-lettered item %s: classifying it failed twice (%r)", item.id, exc,
                          extra={"item_id": item.id})
        return scored

    def _finish(self, batch: Batch, future: Future | None) -> None:
        self._publish_and_commit(batch, self._scored(batch, future))

    def _publish_and_commit(self, batch: Batch, scored: list[ScoredNews]) -> None:
        started = time.monotonic()
        if scored:
            self.publisher.publish(NEWS_SCORED, keyed_records(scored))
        if batch.dead:
            self.publisher.publish(DEADLETTER, [(None, d) for d in batch.dead])
        if not commit_or_redeliver(self.consumer, batch.offsets, f"a batch of {len(batch)}", batch.metadata):
            self.metrics.errors.labels("commit").inc()
        m = self.metrics
        m.items.inc(len(batch.items))
        m.deadlettered.inc(len(batch.dead))
        m.batch_size.observe(len(batch))
        elapsed = time.monotonic() - batch.opened
        if elapsed > 0:
            m.items_per_s.set(len(batch) / elapsed)
        log.debug("batch of %d scored in %.3f s", len(batch), time.monotonic() - started)

    def _infer(self, prepared, titles: list[str]):
        if isinstance(prepared, Exception):  # preparing the batch failed
            raise prepared
        started = time.monotonic()
        result = classify_batch(self.engine, self.matcher, prepared, titles)
        self.metrics.inference.observe(time.monotonic() - started)
        return result

    def run(self, stop: threading.Event) -> None:
        pending: tuple[Batch, Future | None] | None = None
        try:
            while not stop.is_set():
                batch = self._collect(stop)
                if not len(batch):
                    if pending is not None:
                        self._finish(*pending)
                        pending = None
                    continue
                self.metrics.queue_wait.observe(time.monotonic() - batch.opened)
                try:
                    prepared = self.engine.prepare([i.title for i in batch.items])  # overlaps batch N's inference
                except Exception as exc:  # noqa: BLE001 - the batch fails; _scored tries its items alone
                    prepared = exc
                previous = pending
                scored = self._scored(*previous) if previous is not None else []
                # Start batch N+1 on the model before publishing and committing batch N, so the
                # model does not idle through N's broker round trips; commits stay in order.
                pending = (batch, self._pool.submit(self._infer, prepared, [i.title for i in batch.items])
                           if batch.items else None)
                if previous is not None:
                    self._publish_and_commit(previous[0], scored)
            if pending is not None:
                self._finish(*pending)
        finally:
            self._pool.shutdown(wait=True)
            self.consumer.close(autocommit=False)
            self.publisher.close()
