"""``InSequence``: a partition's messages are folded in only as an unbroken run of offsets from
the state's marker; past a hole the partition is sought back (the records come again).
Invariants I2-I4 of docs/aggregate-worker.md, by example and as a property (hypothesis)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from moodwire.metrics import StageMetrics
from streams.aggregate.keys import marker_key
from streams.aggregate.sequence import InSequence
from streams.faustx.source import Source


class Consumer:  # records the seeks the agent asks for (the real consumer is exercised in the worker tests)
    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks += list(partitions.items())

    def assignment(self) -> set[TP]:
        return {TP("news.scored", 0), TP("news.scored", 1)}


def messages(partition: int, *offsets: int) -> list[Message]:
    """Faust messages as the transport hands them to one batch handler (one reference each)."""
    out = [Message("news.scored", partition, o, 0.0, 0, None, b"k", b"v", None) for o in offsets]
    for message in out:
        message.incref()
    return out


def offsets(admitted: list) -> list[int]:
    return [m.offset for m in admitted]


def test_unbroken_runs_pass_and_a_hole_seeks_back_once_then_gives_up_loudly():
    app = SimpleNamespace(consumer=Consumer())
    metrics = StageMetrics("test")
    state = {marker_key(1): {"offset": 9}}  # partition 0: nothing folded yet
    seq = InSequence(Source(app, "news.scored"), state, metrics, give_up_s=3600)

    held: list = []  # every message offered, to see which were kept from the handler's ack

    def admit(partition, *offs):
        batch = messages(partition, *offs)
        held.extend(batch)
        return offsets(asyncio.run(seq.admit(partition, batch)))

    assert admit(0, 5, 4, 6) == [4, 5, 6]             # nothing folded yet: from the first offset seen
    assert admit(1, 11, 10, 12) == [10, 11, 12]       # sorted, from the marker's next offset
    assert admit(1, 8, 9, 10, 11) == [8, 9, 10, 11]   # replays below the marker pass (the state skips them)
    assert app.consumer.seeks == []
    assert admit(1, 10, 11, 15, 16) == [10, 11]       # a hole inside the batch: the run before it only
    assert app.consumer.seeks == [(TP("news.scored", 1), 12)]
    # The set-aside messages are never acknowledged (the committed offset cannot pass the hole).
    assert {m.offset: m.refcount for m in held[-4:]} == {10: 1, 11: 1, 15: 2, 16: 2}
    # Once assigned, partitions are read from their marker, whatever the group committed.
    assert seq.positions({TP("news.scored", 1), TP("news.scored", 0), TP("sentiment.windows", 1)}) == \
        {TP("news.scored", 1): 10}
    state[marker_key(1)] = {"offset": 11}  # the agent folded 10 and 11
    assert admit(1, 13, 14) == []                      # records fetched before the seek: set aside
    assert app.consumer.seeks == [(TP("news.scored", 1), 12)]  # sought back once per hole
    assert metrics.rewinds._value.get() == 1
    asyncio.run(seq.watch())  # within give_up_s of the seek: nothing more
    assert app.consumer.seeks == [(TP("news.scored", 1), 12)]

    seq.give_up_s = 0  # the hole persists: the records are gone (retention): carry on, counted as an error
    assert admit(1, 13, 14) == [13, 14]
    assert metrics.errors.labels("offset_gap")._value.get() == 1


def test_a_seek_back_that_brings_nothing_is_repeated_and_said(caplog):
    app = SimpleNamespace(consumer=Consumer())
    metrics = StageMetrics("test")
    state = {marker_key(1): {"offset": 9}, marker_key(0): {"offset": 3}}
    seq = InSequence(Source(app, "news.scored"), state, metrics, give_up_s=0)
    asyncio.run(seq.admit(1, messages(1, 12, 13)))   # 10 and 11 missing: sought back to 10
    asyncio.run(seq.admit(0, messages(0, 6)))        # 4 and 5 missing: sought back to 4
    state[marker_key(0)] = {"offset": 5}    # partition 0 then moved on; partition 1 got nothing
    asyncio.run(seq.watch())
    assert app.consumer.seeks == [(TP("news.scored", 1), 10), (TP("news.scored", 0), 4), (TP("news.scored", 1), 10)]
    assert "news.scored[1]: nothing came" in caplog.text and "seeking to it again" in caplog.text
    assert metrics.rewinds._value.get() == 3
    assert list(seq.rewinds) == [1]             # partition 0 is no longer watched




# --------------------------------------------------------------------------- the property
# A model of one partition's log (offsets 0..n-1) read by a consumer that misbehaves the ways the
# protocol must survive: it starts anywhere (a fetcher past the committed offset after a restart),
# jumps ahead (a hole), re-delivers older records, duplicates and reorders within a batch, and
# the worker restarts (a fresh InSequence over the persisted markers). The handler folds what is
# admitted as the aggregate pipeline does (skips offsets at or below the marker) and acknowledges
# every message of the batch.

class LogConsumer:
    """The partition's fetch position; ``seek_wait`` moves it, as the transport's seek does."""

    def __init__(self, topic: str, partition: int, position: int) -> None:
        self.tp, self.position, self.seeks = TP(topic, partition), position, 0

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.position = partitions[self.tp]
        self.seeks += 1

    def assignment(self) -> set[TP]:
        return {self.tp}


actions = st.lists(st.one_of(
    st.tuples(st.just("fetch"), st.integers(1, 12), st.randoms(use_true_random=False), st.booleans()),
    st.tuples(st.just("jump"), st.integers(1, 6)),
    st.tuples(st.just("replay"), st.integers(1, 8)),
    st.tuples(st.just("restart"), st.integers(0, 40)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 40), start=st.integers(0, 10), plan=actions)
def test_in_sequence_folds_every_offset_once_in_order_whatever_the_consumer_delivers(n, start, plan):
    topic, partition = "news.scored", 0
    state: dict = {}  # the persisted table: the partition marker only
    metrics = StageMetrics("test")
    consumer = LogConsumer(topic, partition, min(start, n))
    app = SimpleNamespace(consumer=consumer)
    seq = InSequence(Source(app, topic), state, metrics, give_up_s=3600)
    folded: list[int] = []

    def marker() -> int:
        return state.get(marker_key(partition), {"offset": -1})["offset"]

    def deliver(offsets: list[int]) -> None:
        batch = [Message(topic, partition, o, 0.0, 0, None, b"k", b"v", None) for o in offsets]
        for m in batch:
            m.incref()  # the transport's one reference for the one handler
        admitted = asyncio.run(seq.admit(partition, batch))
        ids = {id(m) for m in admitted}
        for m in sorted(admitted, key=lambda m: m.offset):  # the fold: offsets at or below the marker are done
            if marker_key(partition) not in state:  # a partition without a marker starts where it is read
                state[marker_key(partition)] = {"offset": m.offset - 1}
            if m.offset <= marker():
                continue
            # I2: nothing is folded past a hole
            assert m.offset == marker() + 1, f"folded {m.offset} with the marker at {marker()}"
            folded.append(m.offset)
            state[marker_key(partition)] = {"offset": m.offset}
        for m in batch:  # the handler acknowledges the whole batch (one reference each)
            m.refcount -= 1
        # I3: what was set aside keeps a reference: the group's commit cannot pass it
        assert all((m.refcount == 0) == (id(m) in ids) for m in batch)

    for action in plan:
        kind = action[0]
        if kind == "fetch":
            _, size, rng, duplicate = action
            offsets = list(range(consumer.position, min(n, consumer.position + size)))
            if not offsets:
                continue
            consumer.position = offsets[-1] + 1
            if duplicate:
                offsets.append(rng.choice(offsets))
            rng.shuffle(offsets)
            deliver(offsets)
        elif kind == "jump":
            consumer.position = min(n, consumer.position + action[1])
        elif kind == "replay":
            consumer.position = max(0, consumer.position - action[1])
        else:  # restart: a new worker over the persisted markers, fetching from wherever
            seq = InSequence(Source(app, topic), state, metrics, give_up_s=3600)
            positions = seq.positions(consumer.assignment())  # I4: read from the marker once assigned
            consumer.position = positions.get(consumer.tp, min(action[1], n))

    def drain() -> None:  # the consumer behaves: fetches in order from where it is (after any seek back)
        for _ in range(n + 2):
            if consumer.position >= n:
                return
            offsets = list(range(consumer.position, min(n, consumer.position + 7)))
            consumer.position = offsets[-1] + 1
            deliver(offsets)

    drain()
    if marker_key(partition) in state and marker() < n - 1:
        # A hole at the very end shows only when a later record arrives, or at the next assignment,
        # which reads from the marker (I4): the latter here.
        seq = InSequence(Source(app, topic), state, metrics, give_up_s=3600)
        consumer.position = seq.positions(consumer.assignment())[consumer.tp]
        drain()
    # I1: each offset folded once, in order, and every offset after the first folded one is there
    assert folded == list(range(folded[0], n)) if folded else marker() in (-1, n - 1)
