"""``moodwire notify``: alert events from Kafka → the outbox in the store → receivers.

Components started: a kafka-python consumer (group ``moodwire-notify``) on ``alerts`` and a
dispatcher thread. The consumer stores each event and its outbox rows (routing and silences
decided then) in one transaction, then commits the offset: a crash re-delivers the event, the
outbox's unique key drops it. The dispatcher forms notifications from pending rows (group_wait,
group_interval), sends them, and records every attempt; a retryable failure is retried with
exponential back-off, in order per receiver; a non-retryable one is recorded as failed.
Malformed messages go to ``news.deadletter``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from sqlalchemy.exc import InterfaceError, OperationalError

from alerts.outbox import backoff, due_batches, mark_failed, mark_retry, mark_sent, record_event, restore_unsilenced
from alerts.receivers import DeliveryError, make_sender
from alerts.routing import NotifyConfig, labels_of, route
from moodwire.errors import BrokerError, RecordError
from moodwire.kafka import commit_or_redeliver, consumer_config
from moodwire.metrics import StageMetrics
from moodwire.publish import Publisher
from moodwire.records import AlertEvent, DeadLetter, decode, key_label
from moodwire.settings import Settings
from moodwire.store import StoreError
from moodwire.topics import ALERTS, DEADLETTER

log = logging.getLogger("moodwire.notify")
GROUP_ID = "moodwire-notify"
POISON_TRIES = 3  # an alert event the store refuses this many times is dead-lettered


class Notifier:
    def __init__(self, settings: Settings, config: NotifyConfig, engine, metrics: StageMetrics | None = None,
                 tick_s: float = 0.2, environ: dict[str, str] | None = None) -> None:
        self.settings, self.config, self.engine = settings, config, engine
        self.metrics = metrics or StageMetrics("notify")
        self.tick_s = tick_s
        home = Path(settings.home)
        # Every receiver is built now: a bad URL or a missing password stops the start, not a delivery.
        self.senders = {r.name: make_sender(r, config.delivery.timeout, home, environ) for r in config.receivers}
        try:
            self.consumer = KafkaConsumer(ALERTS, **consumer_config(settings, GROUP_ID, "moodwire-notify"),
                                          max_poll_records=200)
        except KafkaError as exc:
            raise BrokerError(f"cannot join consumer group {GROUP_ID} on {settings.kafka_bootstrap}: {exc} "
                              "(check MOODWIRE_KAFKA_BOOTSTRAP)") from None
        self.publisher = Publisher(settings, "moodwire-notify")

    # ------------------------------------------------------------------ consuming
    def consume_once(self, timeout_ms: int = 200) -> int:
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        self.metrics.record_lag(self.consumer)
        if not polled:
            return 0
        dead, n = [], 0
        offsets = {}
        for tp, records in polled.items():
            for rec in records:
                try:
                    event = decode(AlertEvent, rec.value)
                except RecordError as exc:
                    dead.append(DeadLetter.of("notify", tp.topic, tp.partition, rec.offset, str(exc), rec.value))
                else:
                    failed = self._store(event)
                    if failed is None:
                        n += 1
                    else:
                        dead.append(DeadLetter.of("notify", tp.topic, tp.partition, rec.offset, failed, rec.value,
                                                  "failed"))
                offsets[tp] = rec.offset + 1
        if dead:
            self.publisher.publish(DEADLETTER, [(None, d) for d in dead])
            self.metrics.deadlettered.inc(len(dead))
        if not commit_or_redeliver(self.consumer, offsets, f"{len(dead) + n} alert events"):
            self.metrics.errors.labels("commit").inc()  # re-delivered events: the outbox drops repeats
        self.metrics.items.inc(n)
        return n

    def _store(self, event: AlertEvent) -> str | None:
        """Record an event in the outbox. While the store is away (it cannot be reached) this
        retries without end, keeping the offset; an event the store itself refuses (a value it
        cannot hold) is tried ``POISON_TRIES`` times, then returned as the reason to dead-letter it."""
        delay, refused = 1.0, 0
        while True:
            try:
                statuses = record_event(self.engine, event, route(self.config, labels_of(event)))
                break
            except (StoreError, OperationalError, InterfaceError) as exc:  # away: keep the offset, retry
                self.metrics.errors.labels("store").inc()
                log.error("store write failed: %s (retrying in %.0f s; offsets stay uncommitted)", exc, delay)
            except Exception as exc:  # noqa: BLE001 - this event fails on its own
                refused += 1
                self.metrics.errors.labels("event_failed").inc()
                if refused >= POISON_TRIES:
                    log.error("alert %s seq %d dead-lettered: storing it failed %d times: %r", event.fingerprint,
                              event.seq, refused, exc, extra={"fingerprint": event.fingerprint})
                    return f"failed: storing alert {event.fingerprint} seq {event.seq} failed {refused} times: {exc!r}"
                log.error("storing alert %s seq %d failed (%r), try %d of %d", event.fingerprint, event.seq, exc,
                          refused, POISON_TRIES)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        log.info("alert %s seq %d (%s %s on %s) → %s", event.fingerprint, event.seq, event.status, event.rule,
                 key_label(event.topic), ", ".join(f"{r}: {s}" for r, s in statuses.items()),
                 extra={"fingerprint": event.fingerprint, "topic": event.topic})
        return None

    # ------------------------------------------------------------------ dispatching
    def dispatch_once(self) -> int:
        restore_unsilenced(self.engine)
        sent = 0
        for batch in due_batches(self.engine):
            sender = self.senders.get(batch.receiver)
            if sender is None:  # the receiver was removed from the configuration since
                mark_failed(self.engine, batch, f"receiver {batch.receiver!r} is no longer configured")
                continue
            try:
                sender.send(batch.group_key, batch.idempotency_key, batch.events)
            except DeliveryError as exc:
                if exc.retryable:
                    delay = backoff(batch.attempts + 1, self.config.delivery.retry_initial, self.config.delivery.retry_max)
                    mark_retry(self.engine, batch, str(exc), delay)
                    self.metrics.errors.labels("delivery_retry").inc()
                    log.warning("notification %d to %s failed (attempt %d), retrying in %s: %s", batch.id,
                                batch.receiver, batch.attempts + 1, delay, exc)
                else:
                    mark_failed(self.engine, batch, str(exc))
                    self.metrics.errors.labels("delivery_failed").inc()
                    log.error("notification %d to %s failed for good (not retried): %s", batch.id, batch.receiver, exc)
                continue
            mark_sent(self.engine, batch)
            sent += 1
            for e in batch.events:
                self.metrics.alerts.labels(f"delivered_{e.status}").inc()
            log.info("notification %d to %s sent: %s", batch.id, batch.receiver,
                     ", ".join(f"{e.fingerprint}#{e.seq} {e.status}" for e in batch.events))
        return sent

    def _dispatch_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.dispatch_once()
            except Exception as exc:  # the store is away: keep trying, nothing is lost (rows stay)
                self.metrics.errors.labels("dispatch").inc()
                log.error("dispatch round failed: %s: %s", type(exc).__name__, exc)
                stop.wait(2.0)
            stop.wait(self.tick_s)

    def run(self, stop: threading.Event) -> None:
        dispatcher = threading.Thread(target=self._dispatch_loop, args=(stop,), name="dispatch", daemon=True)
        dispatcher.start()
        try:
            while not stop.is_set():
                self.consume_once()
        finally:
            stop.set()
            dispatcher.join(timeout=30)
            self.close()

    def close(self) -> None:
        try:
            self.consumer.close()
        finally:
            self.publisher.close()


__all__ = ["Notifier", "GROUP_ID"]
