"""Faust's aiokafka transport, overridden where Moodwire's delivery protocol needs it
(docs/aggregate-worker.md; each override is listed in ``streams/faustx/__init__.py``):

- ``highwaters``: table recovery reads changelogs to end offsets verified by a fetch
  (``verified_ends``): the embedded broker lists the start of a partition's last record batch
  + 1 as its end, and recovery stopped before the last records; on Apache Kafka both agree.
- the fetch loop (``_drain_messages``, ``getmany``): every fetched record is passed on. Faust
  drops a record below the last offset it read per partition and acknowledges the jump as a
  gap; a fetcher that started past the committed offset after a restart later delivers the
  records it skipped, and Faust dropped them. The agents are idempotent by offset and seek
  back themselves (``streams.aggregate.sequence.InSequence``). Topics with a batch
  subscription (``batches.subscribe``) go to their handlers a fetched batch at a time; other
  topics keep Faust's per-record delivery, run inline and raced against a flow stop only when
  it has to wait.
- ``perform_seek``: after Faust's seek to the committed offsets, each partition whose state
  says it must be read from an earlier offset (``positions``) is sought back there. It never
  seeks forward: the store sink reads the same partitions from the committed offset.
- ``ack_many``: a batch acknowledged under Faust's ack lock taken once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock

from streams.faustx.batches import BatchHandler

log = logging.getLogger("moodwire.aggregate")


async def verified_ends(bootstrap: str, listed: Mapping[TP, int | None],
                        timeout_s: float = 15.0) -> dict[TP, int | None]:
    """The end offset of each partition: ``max(listed, the high watermark of a fetch)``, read with
    a short-lived aiokafka consumer (the worker's own client library). Partitions the fetch does
    not answer within ``timeout_s`` keep the listed figure (logged)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    ends = dict(listed)
    probe = {tp: offset for tp, offset in listed.items() if offset is not None}
    if not probe:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                max_partition_fetch_bytes=1 << 16)
    await consumer.start()
    try:
        parts = {TopicPartition(tp.topic, tp.partition): tp for tp in probe}
        consumer.assign(list(parts))
        for kp, tp in parts.items():
            consumer.seek(kp, max(0, probe[tp] - 1))
        deadline = time.monotonic() + timeout_s
        pending = set(parts)
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=100, max_records=len(pending))
            for kp in list(pending):
                high = consumer.highwater(kp)
                if high is not None:
                    ends[parts[kp]] = max(probe[parts[kp]], high)
                    pending.discard(kp)
        if pending:
            log.warning("no fetch answer for %s within %.0f s: their end offsets are the broker's ListOffsets "
                        "figures (wrong on the embedded broker)", sorted(map(str, pending)), timeout_s)
    finally:
        await consumer.stop()
    return ends


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose ``highwaters`` (used by table recovery) are verified and
    whose fetch loop passes every fetched record on, inline (see the module notes)."""

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        listed = await super().highwaters(*partitions)
        bootstrap = ",".join(f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker_consumer)
        ends = await verified_ends(bootstrap, listed)
        moved = {tp: (listed[tp], ends[tp]) for tp in ends if ends[tp] != listed.get(tp)}
        if moved:
            log.info("end offsets corrected by a fetch (listed → true): %s",
                     ", ".join(f"{tp.topic}[{tp.partition}] {a}→{b}" for tp, (a, b) in sorted(moved.items())))
        return ends

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, then back to where the agents' state says a
        partition must be read from, where that is earlier (see the module notes)."""
        await super().perform_seek()
        positions = getattr(self.transport, "positions", None)
        if positions is None:
            return
        back = {}
        for tp, offset in positions(self.assignment()).items():
            committed = self._committed_offset.get(tp)
            if committed is not None and offset < committed:
                back[tp] = offset
        if back:
            for tp, offset in sorted(back.items()):
                log.warning("%s[%d]: the group's committed offset %d is past what the state has folded in; "
                            "reading from %d", tp.topic, tp.partition, self._committed_offset[tp], offset)
            await self.seek_wait(back)

    async def getmany(self, timeout: float):
        """faust-streaming 0.15.3's ``getmany``, reading each partition's high watermark once per
        fetched batch rather than once per record (each read is a call through the consumer
        thread's client). Records stop at a rebalance (generation
        change) or a flow stop, as in Faust."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:
                await self.perform_seek()  # as Faust: back to the committed offsets
            except Exception as exc:  # noqa: BLE001 - Faust's own handling
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        to_message, buffered, app = self._to_message, self._buffered_partitions, self.app
        ends: set[TP] = set()
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions or tp in buffered:
                if tp not in ends:
                    ends.add(tp)
                    app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

    def ack_many(self, messages) -> None:
        """``message.ack(self)`` for each of ``messages`` (one reference each), with Faust's ack
        lock taken once for the batch instead of three times a message (``Message.ack``,
        ``decref`` and ``Consumer.ack``, re-entered); the final acknowledgement is Faust's own
        (``on_final_ack`` → ``Consumer.ack``)."""
        with ack_lock:
            for message in messages:
                if not message.acked:
                    message.refcount = refcount = max(message.refcount - 1, 0)
                    if not refcount:
                        message.on_final_ack(self)

    async def _drain_messages(self, fetcher) -> None:  # pragma: no cover - runs in every worker test
        """faust-streaming 0.15.3's fetch loop with delivery through ``_deliver`` and without
        its read-offset filter (the gaps it acknowledged and the records it dropped)."""
        callback, getmany = self.callback, self.getmany
        consumer_should_stop, fetcher_should_stop = self._stopped.is_set, fetcher._stopped.is_set
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        # Tracked as Faust's conductor tracks a streamed message, minus the per-message sensor
        # call (Moodwire's monitor keeps no per-message statistics).
        track = self._unacked_messages.add
        batches = getattr(self.transport, "batches", None) or {}
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                records = getmany(timeout=1.0)
                await self.sleep(0)  # as Faust: getmany may be called in a loop that never yields
                if not self.should_stop:
                    taken: dict[str, list] = {}
                    async for _tp, message in records:
                        handlers = batches.get(message.topic)
                        if handlers:
                            track(message)
                            taken.setdefault(message.topic, []).append(message)
                            continue
                        since_yield += 1
                        if since_yield > 100:
                            await asyncio.sleep(0)
                            since_yield = 0
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await self._deliver(callback, message)
                    for topic, messages in taken.items():
                        handlers = batches[topic]
                        with ack_lock:  # Message.incref, once for the batch
                            for message in messages:
                                message.refcount += len(handlers)
                        if len(handlers) == 1:
                            await handlers[0](messages)
                        else:
                            await asyncio.gather(*(handler(messages) for handler in handlers))
                    if taken and commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, callback, message) -> None:
        """Run the delivery inline; if it has to wait, the rest races the flow stop as in Faust."""
        delivery = callback(message)
        try:
            waiting_on = delivery.send(None)
        except StopIteration:
            return
        await self.wait_first(_resume(delivery, waiting_on), self.suspend_flow.wait())


async def _resume(coro, waiting_on):
    """Drive ``coro``, which has already yielded ``waiting_on`` (a future, or None for a bare
    yield), to its end as an asyncio Task would; cancelled, it passes the cancellation in."""
    try:
        while True:
            if waiting_on is None:
                await asyncio.sleep(0)
            else:
                waiting_on._asyncio_future_blocking = False
                await asyncio.wait((waiting_on,))  # the coroutine itself receives the result or error
            waiting_on = coro.send(None)
    except StopIteration as done:
        return done.value
    except asyncio.CancelledError:
        try:
            coro.throw(asyncio.CancelledError())
        except (asyncio.CancelledError, StopIteration):
            pass
        else:
            coro.close()
        raise


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    positions: Callable[[set[TP]], Mapping[TP, int]] | None = None
    batches: dict[str, list[BatchHandler]]


def install(app, positions: Callable[[set[TP]], Mapping[TP, int]] | None = None) -> None:
    """Give ``app`` this transport (before its consumer starts). ``positions(assignment)``:
    the offset each partition must be read from according to the agents' state. Batch
    subscriptions (``batches.subscribe``) may be added until the consumer starts."""
    app.transport = Transport(app.conf.broker_consumer, app)
    app.transport.positions = positions
    app.transport.batches = {}


__all__ = ["verified_ends", "install", "Consumer", "Transport"]
