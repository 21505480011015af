"""``moodwire aggregate``: the faust-streaming worker. Agents stay thin: decode → call the
pure ``streams.aggregate.Aggregator`` → write state and send records, each step awaited.

Components started: one Faust app (consumer group ``moodwire-aggregate``) with
- agent ``aggregate`` on ``news.scored``: micro-batches (at most ``aggregate_batch`` records of a
  fetch) grouped by source partition; bucket writes to the changelog-backed table
  ``sentiment-buckets``; final windows and late items (to ``news.deadletter``); then the
  partition marker;
- agents ``sink-items`` (``news.scored``) and ``sink-windows`` (``sentiment.windows``):
  idempotent upserts into the store (off with ``--no-sink``);
- agent ``evaluate-alerts`` (``sentiment.windows`` → ``alerts``) when MOODWIRE_ALERT_RULES is
  set (``streams.alerting``);
- timers: the throttled emitter of changed windows, and the idle-partition heartbeat.

Every agent takes its records a fetched batch at a time (whole-batch delivery,
``streams.faust_transport``): the Faust agents are registered so that Faust subscribes their
topics and assigns partitions with the tables, and the records go to the handlers named here.

Table recovery reads the changelog to end offsets verified by a fetch (``streams.faust_transport``;
the embedded broker under-reports them). Micro-batches mix source partitions: table writes go
through ``streams.faust_state``, which names each write's partition and sets the current event Faust and its rocksdb store use.
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import sys
import time
import traceback
from pathlib import Path
from collections import defaultdict, deque
from datetime import datetime, timezone
from typing import Any

import faust
from faust.types import TP

from moodwire.errors import RecordError
from moodwire.kafka import faust_config
from moodwire.records import DeadLetter, ScoredNews, TopicWindow, decode
from moodwire.settings import Settings
from moodwire.spans import parse_span, parse_windows
from moodwire.store import StoreError, open_store
from moodwire.topics import DEADLETTER, NEWS_SCORED, SENTIMENT_WINDOWS
from streams.aggregate import MARKER_PREFIX, Aggregator, marker_key
from streams.alerting import AlertEvaluator
from streams.faust_state import Changelog, InSequence, as_current, by_partition, enqueue_records
from streams.faust_monitor import LeanMonitor
from streams.faust_transport import install as install_transport
from streams.metrics import StageMetrics
from streams.sink import upsert_items, upsert_windows

log = logging.getLogger("moodwire.aggregate")
APP_ID = "moodwire-aggregate"
TABLE = "sentiment-buckets"


class AggregateApp:
    """Builds the Faust app and holds the worker's in-memory state (never the source of truth)."""

    def __init__(self, settings: Settings, *, sink: bool = True, datadir: str | None = None,
                 metrics: StageMetrics | None = None, rules: list | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or StageMetrics("aggregate")
        self.aggregator = Aggregator(parse_windows(settings.aggregate_windows), parse_span(settings.aggregate_lateness))
        self.idle = parse_span(settings.aggregate_idle).total_seconds()
        self.idle_clock = settings.aggregate_idle_clock
        self.emit_interval = settings.aggregate_emit_interval_ms / 1000
        self.pending: dict[tuple[str, str, datetime], int] = {}  # window → partition, to emit (throttled)
        self.last_seen: dict[int, float] = {}
        # Window records are computed and sent under one lock: a window computed by the emitter
        # timer before a batch must not reach the topic after that batch's fresher final record.
        self.window_lock = asyncio.Lock()
        self.settling: deque[asyncio.Future] = deque()  # batches whose markers are not yet acknowledged
        self._quiet = False  # the Kafka clients' loggers quietened (after the worker set logging up)
        self.engine = open_store(settings.store) if sink else None

        # Faust's monitor without its per-event bookkeeping (its web views are off).
        config = {**faust_config(settings, APP_ID, datadir), "Monitor": LeanMonitor}
        Path(config["datadir"]).mkdir(parents=True, exist_ok=True)
        app = faust.App(**config)
        # End offsets verified by a fetch (table recovery reads the whole changelog); partitions
        # read from where the agents' state says after a rebalance.
        self.batches: dict[str, list] = defaultdict(list)  # topic → batch handlers
        install_transport(app, positions=self._positions, batches=self.batches)
        self.app = app
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.scored = app.topic(NEWS_SCORED, partitions=settings.kafka_partitions, **raw)
        self.windows_topic = app.topic(SENTIMENT_WINDOWS, partitions=settings.kafka_partitions, **raw)
        self.deadletter = app.topic(DEADLETTER, partitions=settings.kafka_partitions, **raw)
        # Keys and values are plain JSON on the changelog (no model types: recovery needs none).
        self.table = app.Table(TABLE, default=None, partitions=settings.kafka_partitions)
        self.table.on_recover(self._recovered)
        self.changelog = Changelog(self.table)
        self.sequence = InSequence(app, NEWS_SCORED, self.changelog.state, self.metrics)
        self._agent(self.scored, "aggregate", self._on_scored)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_before_shutdown.connect(self._on_revoked)
        if sink:
            self._agent(self.scored, "sink-items", self._sink(ScoredNews, upsert_items))
            self._agent(self.windows_topic, "sink-windows", self._sink(TopicWindow, upsert_windows))
        self.sequences = [self.sequence]
        if rules:
            self.evaluator = AlertEvaluator(app, rules, settings.kafka_partitions, self._send, self._dead,
                                            self.metrics)
            self._agent(self.evaluator.windows, "evaluate-alerts", self.evaluator.on_batch)
            self.sequences.append(self.evaluator.sequence)
        app.timer(max(0.05, self.emit_interval or 0.05), name="emit-windows")(self._emit_pending)
        app.timer(max(0.5, min(5.0, self.idle / 2)), name="heartbeat")(self._heartbeat)

    # ------------------------------------------------------------------ state access
    @property
    def state(self):
        """The table as it will be once the queued writes land (``faust_state.Changelog``)."""
        return self.changelog.state

    def _positions(self, assignment) -> dict[TP, int]:
        return {tp: offset for sequence in self.sequences for tp, offset in sequence.positions(assignment).items()}

    async def _recovered(self) -> None:
        for partition in list(self.aggregator.index):
            self.aggregator.forget(partition)
        self.aggregator.clock_watermark.clear()
        by_partition: dict[int, list[str]] = defaultdict(list)
        for key, value in self.state.items():
            if not key.startswith(MARKER_PREFIX) and value:
                by_partition[value["partition"]].append(key)
        for partition, keys in by_partition.items():
            self.aggregator.adopt(partition, keys)
        now = time.monotonic()
        for tp in self.app.consumer.assignment():
            if tp.topic == NEWS_SCORED:
                self.last_seen[tp.partition] = now
        log.info("table %s recovered: %d buckets on partitions %s", TABLE,
                 sum(map(len, by_partition.values())), sorted(by_partition))

    # ------------------------------------------------------------------ sending
    async def _send(self, topic, records: list[tuple[bytes | None, bytes]]) -> None:
        """Send in whole batches and wait for every acknowledgement (``faust_state.enqueue_records``:
        Faust's ``Topic.send`` path measured ~0.6 ms per record here)."""
        await (await self._enqueue(topic, records))

    async def _enqueue(self, topic, records: list[tuple[bytes | None, bytes]]):
        """Queue behind what was queued before; returns the future of the acknowledgements."""
        return await enqueue_records(self.app, topic.get_topic_name(), [(None, key, value) for key, value in records])

    async def _send_windows(self, windows: list[TopicWindow]) -> None:
        await (await self._enqueue_windows(windows))

    async def _enqueue_windows(self, windows: list[TopicWindow]):
        for w in windows:
            self.pending.pop((w.topic, w.window, w.start), None)
        return await self._enqueue(self.windows_topic, [(w.topic.encode(), w.encode()) for w in windows])

    async def _dead(self, letters: list[DeadLetter]) -> None:
        await (await self._enqueue_dead(letters))

    async def _enqueue_dead(self, letters: list[DeadLetter]):
        self.metrics.deadlettered.inc(len(letters))
        return await self._enqueue(self.deadletter, [(None, d.encode()) for d in letters])

    # ------------------------------------------------------------------ agents
    def _agent(self, topic, name: str, handler) -> None:
        """Register agent ``name`` on ``topic``, its records going to ``handler`` a fetched batch at
        a time (the agent itself receives none; see the module notes)."""
        async def registered(stream):
            async for _event in stream:
                raise RuntimeError(f"agent {name} received a record from Faust's streams: {topic.get_topic_name()} "
                                   "records go to its batch handler (streams.faust_transport)")
        self.app.agent(topic, name=name)(registered)
        self.batches[topic.get_topic_name()].append(handler)

    async def _on_scored(self, messages: list) -> None:
        """A fetched batch of news.scored, in micro-batches of at most ``aggregate_batch`` records;
        each message acknowledged once its micro-batch is applied (``_apply``)."""
        if not self._quiet:
            _quiet_clients(self.settings.log_level)
            self._quiet = True
        consumer, size = self.app.consumer, self.settings.aggregate_batch
        for at in range(0, len(messages), size):
            chunk = messages[at:at + size]
            started = time.perf_counter()
            groups = {}
            for partition, group in by_partition(chunk).items():
                admitted = await self.sequence.admit(partition, group)
                if admitted:
                    groups[partition] = admitted
            async with self.window_lock:
                await self._apply(groups)
            consumer.ack_many(chunk)
            self.metrics.batch_size.observe(len(chunk))
            self.metrics.items.inc(len(chunk))
            elapsed = time.perf_counter() - started
            if elapsed > 0:
                self.metrics.items_per_s.set(len(chunk) / elapsed)

    async def _apply(self, groups: dict[int, list]) -> None:
        """One micro-batch, all partitions at once, in two acknowledged steps:
        1. bucket state, final windows and dead letters   2. each partition's marker.
        The marker shares its changelog partition with the buckets, but the windows and dead
        letters go to other topics: the marker is sent only once all of them are acked.

        Pipelined: step 1 is queued on the producer (in order, under the window lock) and the
        worker's view of the state, markers included, is updated at once (``Changelog.state``; the
        table's store only once the changelog acknowledged), so the next batch is computed while
        the broker acknowledges this one; step 2 runs in ``settling`` tasks, each after the one
        before it. A crash before a marker lands replays its batch, which the buckets' offsets
        make idempotent; the consumer's committed offset may then be past the marker, and the
        partition is read from the marker when it is assigned again (``faust_transport``)."""
        await self._settled(depth=1)  # at most two batches unacknowledged: memory stays bounded
        done = []
        for partition, messages in groups.items():
            as_current(self.app, messages[-1])  # table writes go to this partition (changelog and rocksdb)
            self.last_seen[partition] = time.monotonic()
            records, bad = [], []
            for msg in messages:
                try:
                    records.append((msg.offset, decode(ScoredNews, msg.value)))
                except RecordError as exc:
                    bad.append(DeadLetter.of("aggregate", msg.topic, partition, msg.offset, str(exc), msg.value))
            result = self.aggregator.apply(self.state, partition, records)
            for key, value in result.bucket_writes.items():
                self.changelog.put(partition, key, value)
            bad += [DeadLetter.of("aggregate", NEWS_SCORED, partition, m.offset, m.reason, m.item.encode())
                    for m in result.misrouted]
            done.append((partition, messages, result, bad))

        windows, letters = [], []
        for partition, messages, result, bad in done:
            windows += result.windows
            letters += bad + [DeadLetter.of("aggregate", NEWS_SCORED, partition, late.offset, late.reason,
                                            late.item.encode()) for late in result.late]
            if result.late:
                self.metrics.errors.labels("late").inc(len(result.late))
            if bad:
                self.metrics.errors.labels("malformed").inc(len(bad))
        acked = await asyncio.gather(self.changelog.enqueue(), self._enqueue_windows(windows),
                                     self._enqueue_dead(letters))

        markers = []
        for partition, messages, result, bad in done:
            # Malformed records advance the marker too: they are in the dead-letter topic now.
            last = max(m.offset for m in messages)
            as_current(self.app, messages[-1])
            markers.append(self.changelog.hold(partition, marker_key(partition),
                                               {**result.marker, "offset": max(last, result.marker["offset"])}))
            for window in result.touched:
                self.pending.setdefault(window, partition)
        before = self.settling[-1] if self.settling else None
        self.settling.append(asyncio.ensure_future(self._settle(acked, before, markers)))

    async def _settle(self, acked, before, markers) -> None:
        """Step 2 of a batch: its markers, once its step 1 and the batch before it are acknowledged
        (a failed batch before it fails this one too)."""
        await asyncio.gather(*acked)
        if before is not None:
            await asyncio.shield(before)
        await self.changelog.flush(markers)

    async def _settled(self, depth: int = 0) -> None:
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

    async def _on_revoked(self, app, revoked=None, **kwargs) -> None:
        """Markers land before another worker takes the partitions over, or this worker stops
        (Faust flushed the producer already). A marker that does not land costs a replay of its
        batch, never an item: said, not raised."""
        try:
            await asyncio.wait_for(self._settled(), timeout=self.settings.kafka_session_timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - the batch is replayed from the previous marker
            log.warning("partition markers not acknowledged before the partitions moved (%r): their batches "
                        "will be read again", exc)

    def _sink(self, record_type, upsert):
        async def sink(messages: list) -> None:
            """Upsert a fetched batch into the store; acknowledged once it is there."""
            loop = asyncio.get_running_loop()
            rows = []
            for message in messages:
                try:
                    rows.append(decode(record_type, message.value))
                except RecordError:
                    pass  # the aggregate agent dead-letters malformed news.scored records
            delay = 1.0
            while True:
                try:
                    await loop.run_in_executor(None, upsert, self.engine, rows)
                    break
                except StoreError as exc:  # keep the offsets uncommitted and retry: nothing is lost
                    self.metrics.errors.labels("store").inc()
                    log.error("%s (retrying in %.0f s)", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 60.0)
            self.app.consumer.ack_many(messages)
        return sink

    # ------------------------------------------------------------------ timers
    async def _emit_pending(self) -> None:
        if not self.pending:
            return
        async with self.window_lock:  # queued in order under the lock; acknowledged after it
            acked = await self._emit(self.pending)
        await acked

    async def _emit(self, pending: dict):
        batch, self.pending = pending, {}
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
        return await self._enqueue(self.windows_topic, [(w.topic.encode(), w.encode()) for w in windows])

    def _backlog(self, partition: int) -> int | None:
        """news.scored records of the partition not yet folded in: the broker's highwater from the
        last fetch minus the partition marker; None where either is unknown (never guessed).
        A partition that is quiet only because it is stalled (a rebalance waiting for a killed
        member's session to expire, a recovery, a slow fetch) still has a backlog: closing its
        windows then would emit them final without the items still to come."""
        marker = self.state.get(marker_key(partition))
        try:
            high = self.app.consumer.highwater(TP(NEWS_SCORED, partition))
        except Exception:  # noqa: BLE001 - the consumer is not ready (rebalance)
            return None
        if marker is None or high is None:
            return None
        return max(0, high - marker["offset"] - 1)

    async def _heartbeat(self) -> None:
        """Close windows of idle partitions: an idle partition follows the furthest watermark of
        this worker's partitions and, when every partition is idle, the wall clock minus the
        allowed lateness (``idle_clock``). Heartbeat advances are not persisted. First, a seek
        back that brought nothing is repeated (``InSequence.watch``)."""
        for sequence in self.sequences:
            await sequence.watch()
        assigned = sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == NEWS_SCORED)
        if not assigned:
            return
        backlogs = {p: self._backlog(p) for p in assigned}
        for p, backlog in backlogs.items():
            if backlog is not None:
                self.metrics.lag.labels(NEWS_SCORED, str(p)).set(backlog)
        now = time.monotonic()
        # Idle: quiet for a while and nothing left to read (a stalled partition is not idle).
        idle = [p for p in assigned if now - self.last_seen.setdefault(p, now) >= self.idle and backlogs[p] == 0]
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
            async with self.window_lock:
                finals = self.aggregator.heartbeat(self.state, partition, target)
                if finals:
                    log.info("heartbeat: partition %d idle, watermark → %s, %d windows final",
                             partition, target.isoformat(), len(finals))
                    await self._send_windows(finals)


def _quiet_clients(level: str) -> None:
    """aiokafka logs every produced batch at DEBUG; creating those records cost ~10% of a busy
    worker's time even when nothing printed them (the worker's logging set-up runs first)."""
    for name in ("aiokafka", "faust.transport", "kafka"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level.upper())))


def dump_stacks(app=None) -> None:
    """SIGUSR2: log every asyncio task's and thread's stack at WARNING — ask a worker that
    seems stalled (lag > 0, nothing processed) what it is waiting on. An agent's own chain is
    listed from its actor (a task awaiting an actor cannot be followed into it)."""
    out = io.StringIO()
    for agent in (app.agents.values() if app is not None else ()):
        for actor in list(getattr(agent, "_actors", ())):
            print(f"--- agent {agent.name}: " + " → ".join(_awaiting(actor.it)), file=out)
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:  # no loop running in this thread
        tasks = set()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        print(f"--- task {task.get_name()}: " + " → ".join(_awaiting(task.get_coro())), file=out)
    frames = sys._current_frames()
    for ident, stack in frames.items():
        print(f"--- thread {ident}", file=out)
        traceback.print_stack(stack, limit=10, file=out)
    log.warning("stack dump (SIGUSR2): %d asyncio tasks, %d threads\n%s", len(tasks), len(frames), out.getvalue())


def _awaiting(coro) -> list[str]:
    """The chain of coroutines (and generators) ``coro`` is suspended in, outermost first."""
    chain, first = [], coro
    while coro is not None and len(chain) < 20:
        if isinstance(coro, asyncio.Task):  # awaiting another task: follow it
            coro = coro.get_coro()
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain or [repr(first)]


# Python's cyclic garbage collector, set for a worker that makes and drops ~100 objects per
# record (decoded records, Faust messages, window records): with the default thresholds
# (700, 10, 10) a young-generation pass ran every 700 allocations and an older-generation pass
# every 7,000, each walking the surviving table state. Measured (bench/bench_aggregate.py
# items, 40,000, this 2-core machine, 4 runs each): main-thread CPU 181 µs/item at the default,
# 144 µs/item at these thresholds. Reference cycles are still collected: the young generation
# every 30,000 allocations (a fraction of a second at full speed), all generations more rarely.
GC_THRESHOLDS = (30_000, 20, 100)


def tune_gc() -> None:
    """``GC_THRESHOLDS``, after moving what start-up built (modules, the app) out of the
    collector's reach (``gc.freeze``): the rare full collection then walks only the worker's
    own state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class _Worker(faust.Worker):
    def _on_sigusr2(self) -> None:  # mode's default starts pdb on the worker's terminal: a hung worker
        dump_stacks(self.app)


def run_worker(app: AggregateApp, loglevel: str = "INFO") -> None:
    """Run the Faust worker until SIGINT/SIGTERM (clean shutdown, offsets committed); SIGUSR2
    logs its stacks (``dump_stacks``)."""
    tune_gc()
    worker = _Worker(app.app, loglevel=loglevel.lower(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


__all__ = ["AggregateApp", "run_worker", "APP_ID", "TABLE"]
