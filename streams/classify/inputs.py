"""The event-time progress of each ``news.raw`` partition, carried to ``news.scored`` (I8).

An item is late only if it was late when it entered ``news.raw``: published more than the
allowed lateness before the newest publish time its ``news.raw`` partition held before it. That
is a property of ``news.raw`` alone, so it cannot depend on the order in which classify reads the
partitions (a backlog is read a partition at a time), on how many classify processes share them
or on rebalances. Classify therefore keeps, per partition it holds, the newest publish time read
so far — Kafka Streams' *partition time* — and stamps every record it sends with:

- ``source_partition`` and ``input_time``: the item's partition and that partition's newest
  publish time up to and including the item (the aggregate judges lateness against it);
- ``inputs``: every partition of ``news.raw``, those it holds with their newest publish time
  and whether records remain unread on them (the aggregate's watermark is the minimum over the
  partitions still behind, as Flink takes the minimum over an operator's inputs; a caught-up
  partition is idle; one held by another process is unknown until that process says).

The newest time survives restarts and moves with a partition in a rebalance the way Kafka
Streams keeps it: in the metadata of the committed offset (``metadata``/``restore``), so the
process that reads on from a committed offset starts from the time up to that offset. A broker
that does not keep commit metadata (the embedded broker answers none) or an offset committed
before this field existed: the time is rebuilt by reading the partition up to the committed
offset (``scan_published``). An item dated more than ``future`` after the clock does not advance
it (the aggregate dead-letters it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone

from kafka import KafkaConsumer, TopicPartition

from moodwire.errors import RecordError
from moodwire.records import InputProgress, NewsItem, decode

log = logging.getLogger("moodwire.classify")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class InputClock:
    """Per ``news.raw`` partition held: the newest publish time read so far."""

    def __init__(self, future: timedelta | None, clock: Callable[[], datetime] = _now) -> None:
        self.future, self.clock = future, clock
        self.newest: dict[int, datetime | None] = {}

    def restore(self, partition: int, metadata: str | None) -> bool:
        """Take a partition with the time its committed offset's ``metadata`` carries;
        ``False`` when it carries none of classify's (then ``rebuild`` it)."""
        try:
            value = json.loads(metadata or "")
            at = value["newest"]
            self.newest[partition] = None if at is None else datetime.fromisoformat(at)
            return True
        except (ValueError, KeyError, TypeError):
            return False

    def rebuild(self, partition: int, published: Iterable[datetime]) -> None:
        """Take a partition with the publish times of its records before the committed offset."""
        self.newest[partition] = None
        for at in published:
            self.advance(partition, at)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.newest.pop(partition, None)

    def advance(self, partition: int, published_at: datetime) -> datetime | None:
        """The item's input time: its partition's newest publish time, the item included."""
        newest = self.newest.get(partition)
        if self.future is not None and published_at > self.clock() + self.future:
            return newest  # a broken date must not make the partition's real news late
        if newest is None or published_at > newest:
            newest = self.newest[partition] = published_at
        return newest

    def metadata(self, partition: int) -> str:
        """What the commit of ``partition``'s offset carries, read back by ``restore``."""
        newest = self.newest.get(partition)
        return json.dumps({"newest": None if newest is None else newest.isoformat()})

    def view(self, before: Mapping[int, datetime | None], behind: Mapping[int, bool],
             partitions: Iterable[int]) -> dict[int, InputProgress]:
        """What a batch's records say of every partition of the topic: those held with their
        newest time ``before`` the batch (a later record of the partition, the batch's own
        included, is late only if it lies more than the lateness behind it) and whether records
        were unread on them when the batch began — those in the batch, and those with records
        left after it; the others as unknown and behind, which tells the aggregate to wait for
        their holder's word (it never replaces a time it has)."""
        return {p: InputProgress(time=before.get(p), behind=behind.get(p, True) if p in self.newest else True)
                for p in sorted({*partitions, *self.newest})}


def scan_published(config: dict, topic: str, partition: int, end: int) -> Iterator[datetime]:
    """The publish times of ``topic[partition]``'s decodable items before offset ``end``, read
    by a consumer of its own (``config``: consumer settings without a group)."""
    consumer = KafkaConsumer(**config)
    tp = TopicPartition(topic, partition)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.offset >= end:
                        return
                    try:
                        yield decode(NewsItem, record.value).published_at
                    except RecordError:
                        continue
    finally:
        consumer.close(autocommit=False)


__all__ = ["InputClock", "scan_published"]
