"""Writing Faust tables from micro-batches that mix source partitions.

Faust writes a table key's changelog record to the partition of the *current event*, and
its rocksdb store picks the per-partition database from it too. A ``take_events`` batch
holds events of several partitions, so the agents group a batch by partition, make one of
that partition's events current, and name the partition in every write.
``faust.streams._current_event`` is internal to faust-streaming, which is pinned (0.15.3)
for that reason.
"""

from __future__ import annotations

import weakref
from collections import defaultdict

from faust.streams import _current_event


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
