"""The live aggregation and alert evaluation, run over classified items held in memory.

The same code as ``moodwire aggregate``: items go to the partition ``moodwire classify`` would
put them on (news.scored is keyed by topic, and by ``watchlist:NAME`` for an item's watchlist copies; kafka-python's default partitioner over
``MOODWIRE_KAFKA_PARTITIONS``), in publish-time order, through ``Aggregator.apply`` in
micro-batches of ``MOODWIRE_AGGREGATE_BATCH``; the windows each batch makes final go through
``alerts.fold.fold_window`` in the order the worker would send them. At the end of the input
every partition's watermark is moved past the last window (what the worker's idle heartbeat
does once the news stops), so every window that holds news is final.

The result does not depend on batch sizes or on how partitions interleave: lateness and
window contents follow each partition's own offsets and event times, and a topic's alerts
depend only on its own windows, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from kafka.partitioner.default import murmur2

from alerts.fold import fold_window
from alerts.rules import Rule, ladder_windows
from moodwire.records import AlertEvent, ScoredNews, TopicWindow
from moodwire.spans import WindowSpec
from streams.aggregate.fold import Aggregator
from streams.aggregate.keys import marker_key


@dataclass
class FoldResult:
    windows: list[TopicWindow] = field(default_factory=list)  # final windows, in the order made final
    alerts: list[AlertEvent] = field(default_factory=list)    # in the order the alert agent would send them
    late: int = 0                                             # items behind their partition's watermark
    duplicates: int = 0                                       # records of an item already taken for their key
    future: list[str] = field(default_factory=list)           # why each future-dated record was left out


def partition_of(topic: str, partitions: int) -> int:
    """The news.scored partition ``moodwire classify`` sends a topic's items to (a keyed record:
    murmur2 of the key, as kafka-python's ``DefaultPartitioner.partition`` computes it)."""
    return (murmur2(topic.encode()) & 0x7FFFFFFF) % partitions  # kafka-python's DefaultPartitioner


def commit(state: dict[str, dict], applied, partition: int) -> None:
    """Apply one ``Aggregator.apply`` result to an in-memory state, as the worker's changelog
    does: bucket writes (None deletes) and the partition's marker."""
    for key, value in applied.bucket_writes.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    state[marker_key(partition)] = applied.marker


def fold(items: Sequence[ScoredNews], rules: Sequence[Rule], windows: Sequence[WindowSpec],
         lateness: timedelta, partitions: int = 4, batch: int = 4000, future: timedelta = timedelta(minutes=15),
         clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> FoldResult:
    """Windows and alert events of ``items``: news.scored records in the order they were
    published (``streams.classify.worker.keyed_records``: each item, then its watchlist copies).
    The clock is the wall clock: recorded news dated after now (plus ``future``) is left out."""
    aggregator = Aggregator(windows, lateness, future=future, clock=clock, ladder=ladder_windows(rules))
    state: dict[str, dict] = {}
    by_partition: dict[int, list[ScoredNews]] = {}
    for item in items:
        by_partition.setdefault(partition_of(item.key, partitions), []).append(item)
    result = FoldResult()
    alert_state: dict[str, dict] = {}
    window_offset = {p: 0 for p in by_partition}

    def evaluate(partition: int, finals: list[TopicWindow]) -> None:
        for window in finals:
            result.windows.append(window)
            result.alerts.extend(fold_window(rules, alert_state, alert_state, window, window_offset[partition],
                                             partition))
            window_offset[partition] += 1

    for partition in sorted(by_partition):
        records = list(enumerate(by_partition[partition]))
        for start in range(0, len(records), batch):
            applied = aggregator.apply(state, partition, records[start:start + batch])
            commit(state, applied, partition)
            result.late += len(applied.late)
            result.duplicates += applied.duplicates
            result.future += [entry.reason for entry in applied.future]
            evaluate(partition, applied.windows)
    newest = [state[marker_key(p)]["max_event"] for p in sorted(by_partition)]
    last_event = max((datetime.fromisoformat(t) for t in newest if t is not None), default=None)
    if last_event is not None:  # the end of the news: close every window (the idle heartbeat)
        closing = last_event + max(w.span for w in windows) + lateness
        for partition in sorted(by_partition):
            evaluate(partition, aggregator.heartbeat(state, partition, closing))
    return result
