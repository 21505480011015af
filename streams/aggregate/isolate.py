"""A micro-batch the fold raised on, folded again one record at a time: the record it raises on
is set aside — dead-lettered with reason ``failed`` by the caller — and the others count as the
batch would have counted them. Without this, the worker would stop on the batch, restart, read
the same batch and stop again: a crash loop that holds every later item of the partition.

The records are folded in offset order over an ``Overlay`` of the table with the writes of the
records folded before them, so each sees the state as it will be; their results are joined into
one ``BatchResult`` that the pipeline handles as any batch's. The id of a record that raised is
forgotten, so the item counts when it is sent again; an indexed bucket key it may leave behind
names no bucket of the table, which the fold reads first (a restart rebuilds the index from the
table: ``Aggregator.adopt``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import NamedTuple

from moodwire.overlay import Overlay
from moodwire.records import ScoredNews
from streams.aggregate.fold import Aggregator, BatchResult
from streams.aggregate.keys import marker_key
from streams.aggregate.seen import dedup_key, is_seen_key, slot_of


class Failed(NamedTuple):
    """A record the fold raised on, alone too: dead-lettered with ``reason``."""

    offset: int
    item: ScoredNews
    reason: str


def apply_isolating(aggregator: Aggregator, state: Mapping[str, dict], partition: int,
                    records: Iterable[tuple[int, ScoredNews]]) -> tuple[BatchResult, list[Failed]]:
    """``aggregator.apply(state, partition, records)`` record by record; returns the joined
    result and the records that raised."""
    writes: dict[str, dict | None] = {}
    view = Overlay(state, writes)
    joined = BatchResult(partition)
    joined.marker = dict(state.get(marker_key(partition)) or {"offset": -1, "max_event": None})
    failed: list[Failed] = []
    for offset, item in sorted(records, key=itemgetter(0)):
        try:
            result = aggregator.apply(view, partition, [(offset, item)])
        except Exception as exc:  # noqa: BLE001 - any fault: this record alone is set aside
            failed.append(Failed(offset, item, f"failed: aggregating item {item.id} raised {exc!r}, in its batch and "
                                                "alone; it changes no window (a fault in Moodwire: report it with "
                                                "this record)"))
            aggregator.seen.forget(partition, dedup_key(item.key, item.id), offset)  # sent again, it counts
            continue
        writes.update(result.bucket_writes)
        writes[marker_key(partition)] = result.marker
        _join(joined, result)
    for key, value in writes.items():  # as remembered now: without the ids of the records that raised
        if value is not None and is_seen_key(key):
            writes[key] = aggregator.seen.entry(partition, slot_of(key))
    joined.bucket_writes = {key: value for key, value in writes.items() if key != marker_key(partition)}
    return joined, failed


def _join(joined: BatchResult, result: BatchResult) -> None:
    joined.windows += result.windows  # in order: a window made final again later is sent again
    # a window made final here holds every earlier record's item: sent, not pending any more
    joined.touched = (joined.touched - {(w.topic, w.window, w.start) for w in result.windows}) | result.touched
    joined.late += result.late
    joined.future += result.future
    joined.misrouted += result.misrouted
    joined.skipped += result.skipped
    joined.duplicates += result.duplicates
    joined.marker = result.marker


__all__ = ["apply_isolating", "Failed"]
