"""One fetched batch of ``news.scored`` through the fold, pipelined (docs/aggregate-worker.md).

Each micro-batch (at most ``aggregate_batch`` records) is admitted per partition
(``sequence.InSequence``), folded (``fold.Aggregator``), and its results queued in two steps:

1. bucket writes (changelog), final windows and dead letters, queued together;
2. each partition's marker, sent by a *settling* task once step 1 of this batch and the batch
   before it are acknowledged.

The worker's view of the table (``Changelog.state``) takes the writes at once, so the next
batch is folded while the broker acknowledges this one; at most two batches are unsettled.
The messages are acknowledged once their micro-batch is queued: the group's committed offset
may then run ahead of the marker, and a partition is read from its marker when it is assigned
again (invariants I1-I4).

A micro-batch the fold raises on is folded again one record at a time (``isolate``): the record
it raises on is dead-lettered (reason ``failed``) and the stage goes on — no crash loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from moodwire.errors import RecordError
from moodwire.records import DeadLetter, ScoredNews, decode
from moodwire.topics import NEWS_SCORED
from streams.aggregate.fold import Aggregator
from streams.aggregate.isolate import apply_isolating
from streams.aggregate.keys import marker_key
from streams.aggregate.outputs import Outputs
from streams.aggregate.sequence import InSequence, by_partition
from streams.faustx.source import Source
from streams.faustx.state import Changelog

log = logging.getLogger("moodwire.aggregate")


class Activity:
    """When each partition last brought records (monotonic clock): the pipeline and recovery
    say so, the heartbeat asks how long a partition has been quiet."""

    def __init__(self) -> None:
        self._at: dict[int, float] = {}

    def saw(self, partition: int, at: float | None = None) -> None:
        self._at[partition] = time.monotonic() if at is None else at

    def quiet_for(self, partition: int, now: float) -> float:
        """Seconds since ``partition`` brought records (0 for one not seen: it starts now)."""
        return now - self._at.setdefault(partition, now)


class BatchPipeline:
    def __init__(self, source: Source, aggregator: Aggregator, changelog: Changelog, sequence: InSequence,
                 outputs: Outputs, metrics, batch_size: int, on_first_batch=None) -> None:
        self.source, self.aggregator, self.changelog, self.sequence = source, aggregator, changelog, sequence
        self.outputs, self.metrics, self.batch_size = outputs, metrics, batch_size
        self.on_first_batch = on_first_batch
        self.activity = Activity()
        self.settling: deque[asyncio.Future] = deque()  # batches whose markers are not yet acknowledged

    async def on_scored(self, messages: list) -> None:
        """A fetched batch of news.scored, in micro-batches; each message acknowledged once its
        micro-batch is queued (``apply``)."""
        if self.on_first_batch is not None:
            self.on_first_batch()
            self.on_first_batch = None
        size = self.batch_size
        for at in range(0, len(messages), size):
            chunk = messages[at:at + size]
            started = time.perf_counter()
            groups = {}
            for partition, group in by_partition(chunk).items():
                admitted = await self.sequence.admit(partition, group)
                if admitted:
                    groups[partition] = admitted
            async with self.outputs.lock:
                await self.apply(groups)
            self.source.ack(chunk)
            self.metrics.batch_size.observe(len(chunk))
            self.metrics.items.inc(len(chunk))
            elapsed = time.perf_counter() - started
            if elapsed > 0:
                self.metrics.items_per_s.set(len(chunk) / elapsed)

    async def apply(self, groups: dict[int, list]) -> None:
        """Fold one micro-batch, all partitions at once; queue step 1 and start its settling task.
        A crash before a marker lands replays its batch, which the buckets' offsets make
        idempotent (I1)."""
        await self.settled(depth=1)  # at most two batches unacknowledged: memory stays bounded
        state, done = self.changelog.state, []
        for partition, messages in groups.items():
            self.source.write_to(messages[-1])  # table writes go to this partition
            self.activity.saw(partition)
            records, bad = [], []
            for msg in messages:
                try:
                    records.append((msg.offset, decode(ScoredNews, msg.value)))
                except RecordError as exc:
                    bad.append(DeadLetter.of("aggregate", msg.topic, partition, msg.offset, str(exc), msg.value))
            try:
                result = self.aggregator.apply(state, partition, records)
            except Exception as exc:  # noqa: BLE001 - a fault in the fold: isolate the record (no crash loop)
                log.error("folding %d records of %s[%d] raised %r: each is folded alone", len(records), NEWS_SCORED,
                          partition, exc)
                result, failed = apply_isolating(self.aggregator, state, partition, records)
                for f in failed:
                    log.error("dead-lettered %s[%d]@%d: %s", NEWS_SCORED, partition, f.offset, f.reason,
                              extra={"item_id": f.item.id})
                self.metrics.errors.labels("failed").inc(len(failed))
                bad += [DeadLetter.of("aggregate", NEWS_SCORED, partition, f.offset, f.reason, f.item.encode(),
                                      "failed") for f in failed]
            for key, value in result.bucket_writes.items():
                self.changelog.put(partition, key, value)
            bad += [DeadLetter.of("aggregate", NEWS_SCORED, partition, m.offset, m.reason, m.item.encode(),
                                  "misrouted") for m in result.misrouted]
            done.append((partition, messages, result, bad))

        windows, letters = [], []
        for partition, _messages, result, bad in done:
            windows += result.windows
            letters += bad + [DeadLetter.of("aggregate", NEWS_SCORED, partition, entry.offset, entry.reason,
                                            entry.item.encode(), kind)
                              for kind, entries in (("late", result.late), ("future", result.future))
                              for entry in entries]
            if result.late:
                self.metrics.errors.labels("late").inc(len(result.late))
            if result.future:
                self.metrics.errors.labels("future").inc(len(result.future))
            if result.duplicates:
                self.metrics.duplicates.inc(result.duplicates)
            if bad:
                self.metrics.errors.labels("malformed").inc(len(bad))
        acked = await asyncio.gather(self.changelog.enqueue(), self.outputs.enqueue_windows(windows),
                                     self.outputs.enqueue_dead(letters))

        markers = []
        for partition, messages, result, _bad in done:
            # Malformed records advance the marker too: they are in the dead-letter topic now.
            last = max(m.offset for m in messages)
            self.source.write_to(messages[-1])
            markers.append(self.changelog.hold(partition, marker_key(partition),
                                               {**result.marker, "offset": max(last, result.marker["offset"])}))
            self.outputs.touch(result.touched, partition)
        before = self.settling[-1] if self.settling else None
        self.settling.append(asyncio.ensure_future(self._settle(acked, before, markers)))

    async def _settle(self, acked, before, markers) -> None:
        """Step 2 of a batch: its markers, once its step 1 and the batch before it are acknowledged
        (a failed batch before it fails this one too)."""
        await asyncio.gather(*acked)
        if before is not None:
            await asyncio.shield(before)
        await self.changelog.flush(markers)

    async def settled(self, depth: int = 0) -> None:
        """Wait until at most ``depth`` batches are unacknowledged; a failed one raises here.
        Shielded: the fetch loop that waits here is cancelled when the worker stops, and that
        must not cancel the batches settling (their markers are still sent before it stops)."""
        while self.settling and (len(self.settling) > depth or self.settling[0].done()):
            task = self.settling[0]
            try:
                await asyncio.shield(task)
            finally:
                if task.done() and self.settling and self.settling[0] is task:
                    self.settling.popleft()
