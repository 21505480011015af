"""Writing Faust tables and topics from micro-batches that mix source partitions.

Faust writes a table key's changelog record to the partition of the *current event*, and its
rocksdb store picks the per-partition database from it too. A fetched batch holds messages of
several partitions, so the handlers group a batch by partition, make an event of that
partition current (``as_current``, which sets Faust's private ``_current_event``) and name the
partition in every write.

Records leave in whole producer batches built on the app's own aiokafka producer
(``enqueue_records``, ``Changelog``) instead of Faust's per-record ``Topic.send``; the table's
store is written only once the changelog acknowledged the write (invariant I5 of
docs/aggregate-worker.md).
"""

from __future__ import annotations

import asyncio
import json
import weakref

from aiokafka.partitioner import DefaultPartitioner
from faust.events import Event
from faust.streams import _current_event
from faust.types import TP, Message

from moodwire.overlay import Overlay

_CURRENT: dict[tuple[int, str, int], Event] = {}  # (app, topic, partition) → the event made current


def as_current(app, message) -> None:
    """Make an event of ``message``'s partition Faust's current event: that partition receives
    the following table writes. Faust holds the current event by weak reference; one event per
    partition is kept here (rocksdb reads only its ``message.partition``)."""
    _make_current(app, message.topic, message.partition, message)


def as_current_partition(app, topic: str, partition: int) -> None:
    """``as_current`` for a partition no message is at hand for (a changelog partition)."""
    _make_current(app, topic, partition, None)


def _make_current(app, topic: str, partition: int, message) -> None:
    at = (id(app), topic, partition)
    event = _CURRENT.get(at)
    if event is None:
        if message is None:
            message = Message(topic, partition, -1, 0.0, 0, None, None, None, None)
        event = _CURRENT[at] = Event(app, message.key, message.value, message.headers, message)
    _current_event.set(weakref.ref(event))


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # as faust.serializers.codecs.json (compact, ASCII)


def _json(value) -> bytes:
    return _ENCODER.encode(value).encode()


_PARTITIONER = DefaultPartitioner()  # murmur2 of the key: the same partition as kafka-python and Java clients
_PARTITION_OF: dict[tuple[bytes, int], int] = {}  # (key, partition count) → partition: murmur2 is pure Python


def _partition_of(key: bytes, partitions: list[int]) -> int:
    """The key's partition, as any Kafka client would choose it (a random one for no key)."""
    if key is None:
        return _PARTITIONER(key, partitions, partitions)
    found = _PARTITION_OF.get((key, len(partitions)))
    if found is None:
        if len(_PARTITION_OF) > 65_536:  # keys are topics and item ids here: bounded, but not by us
            _PARTITION_OF.clear()
        found = _PARTITION_OF[(key, len(partitions))] = _PARTITIONER(key, partitions, partitions)
    return found


async def enqueue_records(app, topic: str, records) -> "asyncio.Future[dict[int, int]]":
    """Hand ``(partition, key, value)`` records (partition ``None``: the key's partition, as any
    Kafka client would choose it) to the producer in per-partition batches, in order. When this
    returns they are queued behind everything queued before; the future it returns resolves,
    to each partition's last offset, once every one of them is acknowledged."""
    records = list(records)
    if not records:
        done = asyncio.get_running_loop().create_future()
        done.set_result({})
        return done
    producer = app.producer._ensure_producer()  # the app's aiokafka producer (faust-streaming is pinned)
    partitions = sorted(await producer.partitions_for(topic))
    batches: dict[int, list] = {}
    for partition, key, value in records:
        if partition is None:
            partition = _partition_of(key, partitions)
        group = batches.setdefault(partition, [producer.create_batch()])
        if group[-1].append(key=key, value=value, timestamp=None) is None:
            group.append(producer.create_batch())
            if group[-1].append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"{topic}: a record of {len(value or b'')} bytes exceeds the producer's batch size")
    sent = [(partition, batch, await producer.send_batch(batch, topic, partition=partition))
            for partition, group in batches.items() for batch in group]
    return asyncio.ensure_future(_last_offsets(sent))


async def _last_offsets(sent) -> dict[int, int]:
    done = await asyncio.gather(*(future for _, _, future in sent))
    last: dict[int, int] = {}
    for (partition, batch, _), metadata in zip(sent, done):
        last[partition] = max(last.get(partition, -1), metadata.offset + batch.record_count() - 1)
    return last


_MISSING = object()


class Changelog:
    """Writes of a changelog-backed table, sent together. ``put`` sets (``None``: deletes) a key
    at once in ``state`` — the table as it will be once every queued write lands — and ``flush``
    sends the changelog records, in order, and waits for their acknowledgements (``enqueue``
    queues them and returns the acknowledgement to wait for). ``hold`` sets a key like ``put``
    but returns its record for the caller to ``flush`` later (a marker that may only land once
    other records are acknowledged).

    The table's own store is written only once the changelog has acknowledged the write, in the
    order the writes were queued; until then the write is ``pending`` (read first through
    ``state``). With rocksdb the store outlives the process: a store written ahead of the
    changelog would, after a SIGKILL, hold a partition marker the changelog never received, and
    the restarted worker would skip the records that marker covers. Keys and values are serialized as the table itself would (its recovery reads them)."""

    def __init__(self, table) -> None:
        self.table = table
        self.topic = table.changelog_topic
        self.records: list[tuple] = []
        self.pending: dict = {}  # key → value (None: deleted) written but not yet acknowledged
        self.state = StateView(table, self.pending)
        self._applied: asyncio.Future | None = None  # the last queued write's application to the store
        # JSON tables (the default): the bytes Faust's json codec writes, without its four
        # layers of registry and schema calls per record.
        self.json = table.key_serializer == "json" and table.value_serializer == "json"

    def put(self, partition: int, key, value) -> None:
        self.records.append(self.hold(partition, key, value))

    def hold(self, partition: int, key, value) -> tuple:
        table, topic = self.table, self.topic
        self.pending[key] = value
        if value is None:
            payload = None
        else:
            payload = _json(value) if self.json else topic.prepare_value(value, table.value_serializer)[0]
        raw_key = _json(key) if self.json else topic.prepare_key(key, table.key_serializer)[0]
        return partition, raw_key, payload, key, value

    async def flush(self, records: list[tuple] | None = None) -> None:
        """Send ``records`` (default: everything ``put`` since the last call) and wait for them
        (a cancelled caller leaves them queued and their application to the store running)."""
        await asyncio.shield(await self.enqueue(records))

    async def enqueue(self, records: list | None = None) -> "asyncio.Future[None]":
        """Queue ``records`` (default: everything ``put`` since the last call) behind what was
        queued before; returns the future of their acknowledgement and application to the store."""
        if records is None:
            records, self.records = self.records, []
        name = self.topic.get_topic_name()
        acked = await enqueue_records(self.table.app, name, [r[:3] for r in records])
        self._applied = asyncio.ensure_future(self._persisted(name, acked, records, self._applied))
        return self._applied

    async def _persisted(self, name: str, acked, records: list[tuple], before) -> None:
        offsets = await acked
        if before is not None:  # applied in the order queued (acknowledgements of two queues can cross)
            await asyncio.wait((before,))  # whatever became of it: its records are another queue's
        app, data, pending = self.table.app, self.table.data, self.pending
        for partition, _, _, key, value in records:
            as_current_partition(app, name, partition)  # rocksdb writes the current event's partition
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
            if pending.get(key, _MISSING) is value:  # nothing newer queued for the key
                del pending[key]
        for partition, offset in offsets.items():
            # What Faust's own changelog callback does: rocksdb recovery resumes after it.
            data.set_persisted_offset(TP(name, partition), offset)


class StateView(Overlay):
    """A table as it will be once its queued writes land: ``pending`` first, then the store."""

    def __init__(self, table, pending: dict) -> None:
        super().__init__(None, pending)
        self.table = table

    @property
    def base(self):
        return self.table.data  # the store Faust holds now (never cached here)

    @property
    def pending(self) -> dict:
        return self.writes
