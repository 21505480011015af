"""Writing Faust tables from micro-batches that mix source partitions.

Faust writes a table key's changelog record to the partition of the *current event*, and
its rocksdb store picks the per-partition database from it too. A ``take_events`` batch
holds events of several partitions, so the agents group a batch by partition, make one of
that partition's events current, and name the partition in every write.
``faust.streams._current_event`` is internal to faust-streaming, which is pinned (0.15.3)
for that reason.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import defaultdict

from faust.streams import _current_event
from faust.types import TP

from streams.aggregate import marker_key

log = logging.getLogger("moodwire.streams")


def by_partition(events) -> dict[int, list]:
    """The batch's events grouped by source partition, each group in arrival order, each
    offset once: after a restart the consumer was seen to deliver one record twice within a
    ``take_events`` batch (embedded broker, the last offset of a partition)."""
    groups: dict[int, list] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for event in events:
        at = (event.message.partition, event.message.offset)
        if at not in seen:
            seen.add(at)
            groups[at[0]].append(event)
    return groups


class InSequence:
    """Admits a partition's events only as an unbroken run of offsets from the next offset
    the agent's own state expects (its partition marker). That state, written with the
    results, is the source of truth for progress; the consumer's position is not. After a
    restart the fetcher was seen (embedded broker) to start past the committed offset and
    bring the skipped records later, even inside one batch: folding a later record first
    would move the marker past the earlier ones, which would then be skipped as done. So
    events past a hole in the offsets are set aside (the caller neither folds nor counts
    them) and the partition is sought back to the hole; the records come again, in order.

    The agents' topics are neither compacted nor transactional, so offsets are contiguous;
    if a hole persists ``give_up_s`` after seeking back (records deleted by retention, a
    transactional producer), the records are really gone: said as an error and counted, and
    the partition carries on from what is there."""

    def __init__(self, app, topic: str, table, metrics, give_up_s: float = 30.0) -> None:
        self.app, self.topic, self.table, self.metrics = app, topic, table, metrics
        self.give_up_s = give_up_s
        self.rewinds: dict[int, tuple[int, float]] = {}  # partition → (offset sought back to, when)

    def next_offset(self, partition: int) -> int | None:
        """The offset after the partition's marker (``{"offset": …}`` under ``marker_key``)."""
        marker = self.table.data.get(marker_key(partition))
        return None if marker is None else marker["offset"] + 1

    async def admit(self, partition: int, events: list) -> list:
        """The events that may be folded in now, in offset order (replays below the marker
        included: the state skips them). Make one of the events current first (rocksdb)."""
        ordered = sorted(events, key=lambda e: e.message.offset)
        expected = self.next_offset(partition)
        if expected is None:
            expected = ordered[0].message.offset
        admitted = []
        for event in ordered:
            offset = event.message.offset
            if offset > expected:
                break
            admitted.append(event)
            expected = max(expected, offset + 1)
        if len(admitted) == len(ordered):
            self.rewinds.pop(partition, None)
            return admitted
        hole_end = ordered[len(admitted)].message.offset
        rewind = self.rewinds.get(partition)
        now = time.monotonic()
        if rewind is not None and rewind[0] == expected and now - rewind[1] >= self.give_up_s:
            self.rewinds.pop(partition, None)
            self.metrics.errors.labels("offset_gap").inc()
            log.error("%s[%d]: offsets %d..%d did not come %.0f s after seeking to them (deleted by retention?); "
                      "what they held is missing", self.topic, partition, expected, hole_end - 1, self.give_up_s)
            return ordered
        if rewind is None or rewind[0] != expected:
            self.rewinds[partition] = (expected, now)
            self.metrics.rewinds.inc()
            log.warning("%s[%d]: offsets %d..%d were not delivered before %d; seeking back to %d (the records "
                        "after the hole are set aside and come again)", self.topic, partition, expected,
                        hole_end - 1, hole_end, expected)
            # In the consumer's own thread (aiokafka's seek is not thread-safe), waiting for it.
            await self.app.consumer.seek_wait({TP(self.topic, partition): expected})
        return admitted


def as_current(event) -> None:
    """Make ``event`` the current event (its partition receives the following table writes)."""
    _current_event.set(weakref.ref(event))


def write(table, partition: int, key, value):
    """Set (or, with ``None``, delete) ``key`` locally and send its changelog record to
    ``partition``; returns the future of the changelog send (await it for the ack)."""
    if value is None:
        table.data.pop(key, None)
        return table.send_changelog(partition, key, None, value_serializer="raw")
    table.data[key] = value
    return table.send_changelog(partition, key, value)
