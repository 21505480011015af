"""``moodwire aggregate``: the faust-streaming app, its topics, tables and subscriptions.

One Faust app (consumer group ``moodwire-aggregate``) with
- ``aggregate`` on ``news.scored``: micro-batches through the fold into the changelog-backed
  table ``sentiment-buckets``; final windows to ``sentiment.windows``, late and malformed items
  to ``news.deadletter``; then the partition markers (``pipeline``);
- ``sink-items`` (``news.scored``) and ``sink-windows`` (``sentiment.windows``): idempotent
  upserts into the store (off with ``--no-sink``; ``store_sink``);
- ``evaluate-alerts`` (``sentiment.windows`` → ``alerts``) when MOODWIRE_ALERT_RULES is set
  (``alerting``);
- timers: the throttled emitter of changed windows and the idle-partition heartbeat (``emit``).

Each subscription takes its records a fetched batch at a time (``faustx.batches``). The
delivery protocol, with the task that owns each step, is docs/aggregate-worker.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import faust
from faust.types import TP

from alerts.rules import ladder_windows
from moodwire.kafka import faust_config
from moodwire.metrics import StageMetrics
from moodwire.records import ScoredNews, TopicWindow
from moodwire.settings import Settings
from moodwire.store import open_store
from moodwire.topics import DEADLETTER, NEWS_SCORED, SENTIMENT_WINDOWS
from streams.aggregate.alerting import AlertEvaluator
from streams.aggregate.emit import Emitter
from streams.aggregate.fold import Aggregator
from streams.aggregate.keys import MARKER_PREFIX
from streams.aggregate.outputs import Outputs
from streams.aggregate.pipeline import BatchPipeline
from streams.aggregate.sequence import InSequence
from streams.aggregate.store_sink import sink_handler, upsert_items, upsert_windows
from streams.aggregate.process import quiet_clients
from streams.faustx.batches import subscribe
from streams.faustx.monitor import LeanMonitor
from streams.faustx.source import Source
from streams.faustx.state import Changelog
from streams.faustx.transport import install as install_transport

log = logging.getLogger("moodwire.aggregate")
APP_ID = "moodwire-aggregate"
TABLE = "sentiment-buckets"
RAW = {"key_serializer": "raw", "value_serializer": "raw"}


class AggregateApp:
    """Builds the Faust app and holds the worker's in-memory state (never the source of truth)."""

    def __init__(self, settings: Settings, *, sink: bool = True, datadir: str | None = None,
                 metrics: StageMetrics | None = None, rules: list | None = None) -> None:
        self.settings = settings
        self.metrics = metrics = metrics or StageMetrics("aggregate")
        self.aggregator = Aggregator(settings.windows, settings.lateness, future=settings.future_tolerance,
                                     clock=lambda: datetime.now(timezone.utc), ladder=ladder_windows(rules or []))

        config = {**faust_config(settings, APP_ID, datadir), "Monitor": LeanMonitor}
        Path(config["datadir"]).mkdir(parents=True, exist_ok=True)
        self.app = app = faust.App(**config)
        install_transport(app, positions=self._positions)
        partitions = settings.kafka_partitions
        self.scored = app.topic(NEWS_SCORED, partitions=partitions, **RAW)
        self.windows_topic = app.topic(SENTIMENT_WINDOWS, partitions=partitions, **RAW)
        self.deadletter = app.topic(DEADLETTER, partitions=partitions, **RAW)
        # Keys and values are plain JSON on the changelog (no model types: recovery needs none).
        self.table = app.Table(TABLE, default=None, partitions=partitions)
        self.table.on_recover(self._recovered)
        self.changelog = Changelog(self.table)
        self.source = Source(app, NEWS_SCORED)
        self.sequence = InSequence(self.source, self.changelog.state, metrics)
        self.outputs = Outputs(app, self.windows_topic, self.deadletter, metrics)
        self.pipeline = BatchPipeline(self.source, self.aggregator, self.changelog, self.sequence, self.outputs, metrics,
                                      settings.aggregate_batch, lambda: quiet_clients(settings.log_level))
        subscribe(app, self.scored, "aggregate", self.pipeline.on_scored)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_before_shutdown.connect(self._on_revoked)

        self.engine = open_store(settings.store) if sink else None
        if sink:
            subscribe(app, self.scored, "sink-items",
                      sink_handler(self.source, self.engine, ScoredNews, upsert_items, metrics,
                                   self.outputs.send_dead))
            subscribe(app, self.windows_topic, "sink-windows",
                      sink_handler(Source(app, SENTIMENT_WINDOWS), self.engine, TopicWindow, upsert_windows, metrics,
                                   self.outputs.send_dead))
        self.sequences = [self.sequence]
        if rules:
            self.evaluator = AlertEvaluator(app, rules, partitions, self.outputs.send, self.outputs.send_dead, metrics)
            subscribe(app, self.evaluator.windows, "evaluate-alerts", self.evaluator.on_batch)
            self.sequences.append(self.evaluator.sequence)

        idle_s = settings.idle.total_seconds()
        self.emitter = Emitter(self.source, self.aggregator, self.changelog.state, self.outputs, self.pipeline.activity,
                               self.sequences, metrics, idle_s, settings.aggregate_idle_clock)
        app.timer(max(0.05, settings.aggregate_emit_interval_ms / 1000), name="emit-windows")(self.emitter.emit_pending)
        app.timer(max(0.5, min(5.0, idle_s / 2)), name="heartbeat")(self.emitter.heartbeat)

    @property
    def state(self):
        """The table as it will be once the queued writes land (``faustx.state.Changelog``)."""
        return self.changelog.state

    def _positions(self, assignment) -> dict[TP, int]:
        """Where each assigned partition must be read from, by the agents' markers (I4)."""
        return {tp: offset for sequence in self.sequences for tp, offset in sequence.positions(assignment).items()}

    async def _recovered(self) -> None:
        """After table recovery: rebuild the fold's index of which partition holds which buckets."""
        self.aggregator.forget_all()
        by_partition: dict[int, list[str]] = defaultdict(list)
        for key, value in self.state.items():
            if not key.startswith(MARKER_PREFIX) and value:
                by_partition[value["partition"]].append(key)
        for partition, keys in by_partition.items():
            self.aggregator.adopt(partition, keys, self.state)
        now = time.monotonic()
        for partition in self.source.assigned():
            self.pipeline.activity.saw(partition, now)
        log.info("table %s recovered: %d entries (%d item ids remembered) on partitions %s", TABLE,
                 sum(map(len, by_partition.values())), len(self.aggregator.seen), sorted(by_partition))

    async def _on_revoked(self, app, revoked=None, **kwargs) -> None:
        """Markers land before another worker takes the partitions over, or this worker stops
        (Faust flushed the producer already). A marker that does not land costs a replay of its
        batch, never an item: said, not raised."""
        try:
            await asyncio.wait_for(self.pipeline.settled(), timeout=self.settings.kafka_session_timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - the batch is replayed from the previous marker
            log.warning("partition markers not acknowledged before the partitions moved (%r): their batches "
                        "will be read again", exc)


__all__ = ["AggregateApp", "APP_ID", "TABLE"]
