"""``InSequence``: a partition's messages are folded in only as an unbroken run of offsets from
the state's marker; past a hole the partition is sought back (the records come again)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP, Message

from streams.aggregate import marker_key
from streams.faust_state import Changelog, InSequence
from streams.metrics import StageMetrics


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
    seq = InSequence(app, "news.scored", state, metrics, give_up_s=3600)

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
    seq = InSequence(app, "news.scored", state, metrics, give_up_s=0)
    asyncio.run(seq.admit(1, messages(1, 12, 13)))   # 10 and 11 missing: sought back to 10
    asyncio.run(seq.admit(0, messages(0, 6)))        # 4 and 5 missing: sought back to 4
    state[marker_key(0)] = {"offset": 5}    # partition 0 then moved on; partition 1 got nothing
    asyncio.run(seq.watch())
    assert app.consumer.seeks == [(TP("news.scored", 1), 10), (TP("news.scored", 0), 4), (TP("news.scored", 1), 10)]
    assert "news.scored[1]: nothing came" in caplog.text and "seeking to it again" in caplog.text
    assert metrics.rewinds._value.get() == 3
    assert list(seq.rewinds) == [1]             # partition 0 is no longer watched


def test_changelog_records_are_the_bytes_the_tables_own_codec_writes(tmp_path):
    """Changelog serializes JSON tables itself (speed); recovery decodes with the table's codec,
    so the bytes must be what that codec writes."""
    import faust

    from moodwire.kafka import faust_config
    from moodwire.settings import load_settings
    from streams.faust_state import Changelog

    settings = load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": "127.0.0.1:9"})
    app = faust.App(**faust_config(settings, "codec-check", str(tmp_path)))
    table = app.Table("buckets", default=None, partitions=4)
    changelog = Changelog(table)
    assert changelog.json
    bucket = {"count": 3, "total": -0.30000000000000004, "sum_sq": 0.5, "late": 0, "offset": 12, "partition": 2,
              "most_negative": [[-0.9, "ab12", "Ünïcode “title” \x1f", None, "2026-11-20T09:00:00.123000+00:00"]]}
    marker = {"offset": 5, "max_event": None}
    for key, value in (("Macro\x1f300\x1f1763629200", bucket), ("~partition/3", marker)):
        changelog.put(2, key, value)
        assert changelog.state[key] is value
        partition, raw_key, payload, _, _ = changelog.records[-1]
        assert partition == 2
        assert raw_key == table.changelog_topic.prepare_key(key, table.key_serializer)[0]
        assert payload == table.changelog_topic.prepare_value(value, table.value_serializer)[0]
    changelog.put(2, "~partition/3", None)  # a delete: a tombstone, and gone from the state
    assert changelog.records[-1][2] is None and "~partition/3" not in changelog.state


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_the_store_holds_only_what_the_changelog_acknowledged_in_the_order_queued(tmp_path, store):
    """After a SIGKILL a rocksdb store is what the next worker starts from: it must never be ahead
    of the changelog (an unsent marker there once hid records whose final windows were never sent)."""
    from moodwire.kafka import faust_config
    from moodwire.settings import load_settings

    settings = load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": "127.0.0.1:9", "MOODWIRE_AGGREGATE_STORE": store})
    app = faust.App(**faust_config(settings, "pending-check", str(tmp_path)))
    table = app.Table("buckets", default=None, partitions=4)
    changelog = Changelog(table)
    name = table.changelog_topic.get_topic_name()

    async def scenario():
        loop = asyncio.get_running_loop()
        changelog.put(1, "k", {"v": 1})
        changelog.put(1, "gone", {"v": 0})
        first, changelog.records = changelog.records, []
        changelog.put(1, "k", {"v": 2})
        changelog.put(1, "gone", None)
        changelog.put(3, "~partition/3", {"offset": 7})
        second, changelog.records = changelog.records, []
        acks = [loop.create_future(), loop.create_future()]
        applied_first = asyncio.ensure_future(changelog._persisted(name, acks[0], first, None))
        applied_second = asyncio.ensure_future(changelog._persisted(name, acks[1], second, applied_first))
        state = changelog.state
        assert state["k"] == {"v": 2} and "gone" not in state and state["~partition/3"] == {"offset": 7}
        assert table.data.get("k") is None and table.data.get("~partition/3") is None  # nothing acknowledged
        if store == "memory://":
            assert dict(state.items()) == {"k": {"v": 2}, "~partition/3": {"offset": 7}}
        acks[1].set_result({1: 11, 3: 4})  # the later queue acknowledged first: it waits for the earlier
        await asyncio.sleep(0.01)
        assert not applied_second.done() and table.data.get("k") is None
        acks[0].set_result({1: 9})
        await applied_second
        assert table.data.get("k") == {"v": 2} and table.data.get("gone") is None
        assert table.data.get("~partition/3") == {"offset": 7}
        assert changelog.pending == {}
        if store == "memory://":  # rocksdb iterates the partitions assigned to the worker only (none here)
            assert dict(state) == dict(state.items()) == {"k": {"v": 2}, "~partition/3": {"offset": 7}}

    asyncio.run(scenario())


def test_keyed_records_go_where_any_kafka_client_would_send_them():
    """The partition of a keyed record is cached (murmur2 is pure Python); it must stay the one
    kafka-python (and so the Java client) picks, for every partition count."""
    from kafka.partitioner import murmur2

    from streams.faust_state import _partition_of

    keys = [b"Macro", b"Energy | Oil", "Ünïcode".encode(), b"", b"x" * 300]
    for count in (1, 3, 4, 12):
        partitions = list(range(count))
        for _ in range(2):  # computed, then cached
            assert [_partition_of(k, partitions) for k in keys] == \
                [(murmur2(k) & 0x7FFFFFFF) % count for k in keys]  # kafka-python's DefaultPartitioner
    assert _partition_of(None, [0, 1, 2, 3]) in {0, 1, 2, 3}


def test_the_aggregate_worker_keeps_no_per_event_faust_statistics(tmp_path):
    from moodwire.settings import load_settings
    from streams.faust_app import AggregateApp
    from streams.faust_monitor import LeanMonitor

    worker = AggregateApp(load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": "127.0.0.1:9"}), sink=False,
                          datadir=str(tmp_path))
    monitor = worker.app.monitor
    assert isinstance(monitor, LeanMonitor)
    event = SimpleNamespace(message=messages(0, 5)[0])
    assert monitor.on_stream_event_in(TP("news.scored", 0), 5, object(), event) is None
    monitor.on_table_get(worker.table, "k")
    assert monitor.events_total == 0 and not monitor.tables  # nothing counted
    monitor.on_tp_commit({TP("news.scored", 0): 6})  # what Faust still tracks: commits, sends, rebalances
    assert monitor.tp_committed_offsets[TP("news.scored", 0)] == 6
