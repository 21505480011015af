"""The aggregate worker's two timers: the throttled emitter of changed windows, and the
heartbeat that closes the windows of idle partitions and reports lag."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from moodwire.topics import NEWS_SCORED
from streams.aggregate.fold import Aggregator
from streams.aggregate.keys import marker_key
from streams.aggregate.outputs import Outputs
from streams.aggregate.pipeline import Activity
from streams.faustx.source import Source

log = logging.getLogger("moodwire.aggregate")


class Emitter:
    def __init__(self, source: Source, aggregator: Aggregator, state, outputs: Outputs, activity: Activity,
                 sequences: list, metrics, idle_s: float, idle_clock: bool) -> None:
        self.source, self.aggregator, self.state, self.outputs = source, aggregator, state, outputs
        self.activity, self.sequences, self.metrics = activity, sequences, metrics
        self.idle_s, self.idle_clock = idle_s, idle_clock

    async def emit_pending(self) -> None:
        """Send the windows changed since the last call (queued in order under the outputs'
        lock, acknowledged after it)."""
        if not self.outputs.any_pending:
            return
        async with self.outputs.lock:
            acked = await self._emit()
        await acked

    async def _emit(self):
        batch = self.outputs.take_pending()
        watermarks: dict[int, Any] = {}
        runs: dict[tuple[str, str, int], list[datetime]] = defaultdict(list)  # (topic, window, partition) → starts
        for (topic, name, start), partition in sorted(batch.items()):
            runs[topic, name, partition].append(start)
        windows = []
        for (topic, name, partition), starts in runs.items():  # consecutive windows share their partial sums
            if partition not in watermarks:
                watermarks[partition] = self.aggregator.watermark(self.state, partition)
            windows += self.aggregator.windows_of(self.state, topic, self.aggregator.spec(name), starts,
                                                  watermarks[partition])
        return await self.outputs.enqueue(self.outputs.windows_topic, [(w.topic.encode(), w.encode()) for w in windows])

    def backlog(self, partition: int) -> int | None:
        """news.scored records of the partition not yet folded in: the broker's highwater from the
        last fetch minus the partition marker; None where either is unknown (never guessed).
        A partition that is quiet only because it is stalled (a rebalance waiting for a killed
        member's session to expire, a recovery, a slow fetch) still has a backlog: closing its
        windows then would emit them final without the items still to come."""
        marker = self.state.get(marker_key(partition))
        high = self.source.end(partition)
        if marker is None or high is None:
            return None
        return max(0, high - marker["offset"] - 1)

    async def _empty_partitions(self, backlogs: dict[int, int | None]) -> None:
        """A partition that has never held a record has a backlog of 0, asked of the broker (a
        fetch that brings no record reports no highwater): it must not keep the clock from
        closing the other partitions' windows."""
        unknown = [p for p, backlog in backlogs.items()
                   if backlog is None and self.state.get(marker_key(p)) is None]
        if not unknown:
            return
        for partition, end in (await self.source.ends(unknown)).items():  # {} while the broker is away
            if end == 0:
                backlogs[partition] = 0

    async def heartbeat(self) -> None:
        """Close windows of idle partitions: an idle partition follows the furthest watermark of
        this worker's partitions and, when every partition is idle, the wall clock minus the
        allowed lateness (``idle_clock``). Heartbeat advances are not persisted. First, a seek
        back that brought nothing is repeated (``InSequence.watch``)."""
        for sequence in self.sequences:
            await sequence.watch()
        assigned = self.source.assigned()
        if not assigned:
            return
        backlogs = {p: self.backlog(p) for p in assigned}
        await self._empty_partitions(backlogs)
        for p, backlog in backlogs.items():
            if backlog is not None:
                self.metrics.lag.labels(NEWS_SCORED, str(p)).set(backlog)
        now = time.monotonic()
        # Idle: quiet for a while and nothing left to read (a stalled partition is not idle).
        idle = [p for p in assigned if self.activity.quiet_for(p, now) >= self.idle_s and backlogs[p] == 0]
        if not idle:
            return
        marks = [w for w in (self.aggregator.watermark(self.state, p) for p in assigned) if w is not None]
        target = max(marks) if marks else None
        if self.idle_clock and len(idle) == len(assigned):
            clock = datetime.now(timezone.utc) - self.aggregator.lateness
            target = clock if target is None else max(target, clock)
        if target is None:
            return
        for partition in idle:
            if self.state.get(marker_key(partition)) is None:
                continue  # nothing seen on it yet: nothing to close
            async with self.outputs.lock:
                finals = self.aggregator.heartbeat(self.state, partition, target)
                if finals:
                    log.info("heartbeat: partition %d idle, watermark → %s, %d windows final",
                             partition, target.isoformat(), len(finals))
                    await self.outputs.send_windows(finals)
