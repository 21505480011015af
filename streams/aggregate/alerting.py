"""The alert-evaluation agent of the aggregate worker: final ``TopicWindow`` records from
``sentiment.windows`` → the pure rules of ``alerts/`` → ``AlertEvent`` records on ``alerts``
(keyed by fingerprint).

Only final windows are evaluated: each is complete and emitted once, so decisions do not
depend on when partial updates happened to be sent, and a replay decides the same way. The
cost is latency: a window is judged once the watermark passes its end (the allowed lateness
after its last item).

State per (rule, topic) lives in the changelog-backed table ``alerts-by-rule-topic``: the
state machine, the trailing baseline of final windows, and the highest ``sentiment.windows``
offset applied; one marker per partition holds the highest offset evaluated, so a batch
delivered past it is set aside and the partition sought back (``sequence.InSequence``).
Events are acknowledged before the state is written, so a crash can repeat an event (same
fingerprint and seq; receivers and ``moodwire notify`` drop repeats) but never lose one.
"""

from __future__ import annotations

import logging

from alerts.evaluate import uncounted
from alerts.fold import fold_window, uncounted_rules
from alerts.rules import Rule
from moodwire.errors import RecordError
from moodwire.records import AlertEvent, DeadLetter, TopicWindow, decode, key_label
from moodwire.topics import ALERTS, SENTIMENT_WINDOWS
from streams.aggregate.keys import marker_key
from streams.aggregate.sequence import InSequence, by_partition
from streams.faustx.source import Source
from streams.faustx.state import Changelog

log = logging.getLogger("moodwire.alerts")
TABLE = "alerts-by-rule-topic"


class AlertEvaluator:
    """Registers its table on an existing Faust app (the aggregate worker's, which registers the
    agent ``evaluate-alerts`` on ``windows`` with ``on_batch`` as its batch handler)."""

    def __init__(self, app, rules: list[Rule], partitions: int, send, dead, metrics) -> None:
        self.rules = rules
        self.send, self.dead, self.metrics = send, dead, metrics
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.windows = app.topic(SENTIMENT_WINDOWS, partitions=partitions, **raw)
        self.alerts = app.topic(ALERTS, partitions=partitions, **raw)
        self.table = app.Table(TABLE, default=None, partitions=partitions)
        self.changelog = Changelog(self.table)
        self.source = Source(app, SENTIMENT_WINDOWS)
        self.sequence = InSequence(self.source, self.changelog.state, metrics)
        self.said_uncounted: set[str] = set()  # rules told once that a window does not count for them

    async def on_batch(self, messages: list) -> None:
        """A fetched batch of sentiment.windows (the worker subscribes ``evaluate-alerts`` with this
        as its batch handler, ``faustx.batches``); each message acknowledged
        once its partition's group is evaluated."""
        for partition, group in by_partition(messages).items():
            admitted = await self.sequence.admit(partition, group)
            if admitted:
                await self._evaluate(partition, admitted)
        self.source.ack(messages)

    async def _evaluate(self, partition: int, messages: list) -> None:
        state = self.changelog.state
        writes: dict[str, dict] = {}
        out: list[AlertEvent] = []
        bad: list[DeadLetter] = []
        for message in sorted(messages, key=lambda m: m.offset):
            offset = message.offset
            try:
                window = decode(TopicWindow, message.value)
            except RecordError as exc:
                bad.append(DeadLetter.of("evaluate-alerts", SENTIMENT_WINDOWS, partition, offset, str(exc),
                                         message.value))
                continue
            out += fold_window(self.rules, state, writes, window, offset, partition)
            for rule in uncounted_rules(self.rules, window):
                if rule.name not in self.said_uncounted:
                    self.said_uncounted.add(rule.name)
                    log.warning("rule %r on %r: %s (said once per rule)", rule.name, window.topic,
                                uncounted(rule, window))
        # 1. alert events acknowledged   2. then the state that says they were sent
        await self.send(self.alerts, [(e.fingerprint.encode(), e.encode()) for e in out])
        if bad:
            await self.dead(bad)
        for e in out:
            self.metrics.alerts.labels(e.status).inc()
            log.warning("alert %s: rule %s on %s, value %.3f, threshold %.3f (seq %d, fingerprint %s)%s", e.status,
                        e.rule, key_label(e.topic), e.value, e.threshold, e.seq, e.fingerprint,
                        f" — {e.reason}" if e.reason else "")
        # The partition marker: the next batch must start right after it (InSequence).
        marker = state.get(marker_key(partition)) or {"offset": -1}
        writes[marker_key(partition)] = {"offset": max(marker["offset"], *(m.offset for m in messages)),
                                                 "partition": partition}
        self.source.write_to(messages[-1])  # this partition receives the writes (after the awaits above)
        for key, value in writes.items():
            self.changelog.put(partition, key, value)
        await self.changelog.flush()


__all__ = ["AlertEvaluator", "TABLE"]
