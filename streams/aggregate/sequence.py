"""Which offsets of a partition may be folded next.

The agents' own state is the source of truth for progress: a partition marker in a table
holds the highest offset folded in (``fold.marker_key``). ``InSequence`` admits a partition's
messages only as an unbroken run of offsets from the one after the marker, and seeks the
partition back where a batch starts past it. The protocol is docs/aggregate-worker.md.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from operator import attrgetter

from streams.aggregate.keys import marker_key
from streams.faustx.source import Source

log = logging.getLogger("moodwire.streams")
_offset = attrgetter("offset")


def by_partition(messages) -> dict[int, list]:
    """A fetched batch's messages (Faust ``Message``) grouped by source partition, each group in
    arrival order, each offset once (a consumer may deliver one record twice within a batch
    after a restart)."""
    groups: dict[int, list] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for message in messages:
        at = (message.partition, message.offset)
        if at not in seen:
            seen.add(at)
            groups[at[0]].append(message)
    return groups


class InSequence:
    """Admits a partition's messages only as an unbroken run of offsets from the offset after
    its marker (invariant I2 of docs/aggregate-worker.md). A fetcher may start past that offset
    after a restart and bring the skipped records later, even inside one batch: folding a later
    record first would move the marker past the earlier ones, which would then be skipped as
    done. So messages past a hole are set aside (the caller neither folds nor counts them) and
    the partition is sought back to the hole; the records come again, in order.

    Set-aside messages are never acknowledged (they keep one reference the handler's own ack
    does not drop), so the group's committed offset cannot pass them (I3). Whatever the
    committed offset says, a partition is read from its marker once assigned (``positions``,
    used by the transport's seek, I4).

    The topics are neither compacted nor transactional, so offsets are contiguous; if a hole
    persists ``give_up_s`` after seeking back (records deleted by retention, a transactional
    producer), the records are really gone: said as an error and counted, and the partition
    carries on from what is there. If nothing at all comes ``give_up_s`` after a seek back
    (``watch``, from a timer), the partition is sought back again, and said so."""

    def __init__(self, source: Source, state: Mapping, metrics, give_up_s: float = 30.0) -> None:
        self.source, self.topic, self.state, self.metrics = source, source.topic, state, metrics
        self.give_up_s = give_up_s
        self.rewinds: dict[int, tuple[int, float]] = {}  # partition → (offset sought back to, when)

    def positions(self, assignment) -> dict:
        """Where each assigned partition of the topic must be read from: the offset after its
        marker (partitions without one: wherever the consumer is)."""
        out = {}
        for tp in assignment:
            if tp.topic == self.topic:
                offset = self.next_offset(tp.partition)
                if offset is not None:
                    out[self.source.tp(tp.partition)] = offset
        return out

    def next_offset(self, partition: int) -> int | None:
        """The offset after the partition's marker (``{"offset": …}`` under ``marker_key``)."""
        marker = self.state.get(marker_key(partition))
        return None if marker is None else marker["offset"] + 1

    async def admit(self, partition: int, messages: list) -> list:
        """The messages that may be folded in now, in offset order (replays below the marker
        included: the state skips them). The partition is made current first: the rocksdb
        store reads a key from the current event's partition only."""
        self.source.write_to(messages[-1])
        ordered = sorted(messages, key=_offset)
        admitted, expected = admissible(ordered, self.next_offset(partition))
        if len(admitted) == len(ordered):
            self.rewinds.pop(partition, None)
            return admitted
        set_aside = ordered[len(admitted):]
        hole_end = set_aside[0].offset
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
            await self.source.rewind(partition, expected)
        for message in set_aside:  # never acknowledged: the handler's ack leaves this reference
            message.incref()
        return admitted

    async def watch(self) -> None:
        """Seek back again where nothing was folded ``give_up_s`` after seeking back (a fetch
        that never came was seen once, on Apache Kafka after SIGKILL restarts)."""
        if not self.rewinds:
            return
        now = time.monotonic()
        assigned = set(self.source.assigned())
        for partition, (offset, when) in list(self.rewinds.items()):
            if partition not in assigned or self.next_offset(partition) != offset:
                self.rewinds.pop(partition, None)  # moved on, or no longer ours
            elif now - when >= self.give_up_s:
                self.rewinds[partition] = (offset, now)
                self.metrics.rewinds.inc()
                log.warning("%s[%d]: nothing came %.0f s after seeking back to %d; seeking to it again",
                            self.topic, partition, now - when, offset)
                await self.source.rewind(partition, offset)


def admissible(ordered: list, expected: int | None) -> tuple[list, int | None]:
    """The leading run of ``ordered`` (messages sorted by offset) that leaves no hole after
    ``expected`` (the offset after the marker; ``None``: the first message's), and the offset
    expected after that run: where the hole starts if the run is not all of ``ordered``.
    Offsets below ``expected`` are admitted too: the fold skips them (replays)."""
    if not ordered:
        return [], expected
    if expected is None:
        expected = ordered[0].offset
    admitted = []
    for message in ordered:
        if message.offset > expected:
            break
        admitted.append(message)
        expected = max(expected, message.offset + 1)
    return admitted, expected
