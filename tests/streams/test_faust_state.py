"""The adapter's table writes (``streams.faustx.state``): changelog bytes, the order writes reach
the store, the partition of each key, and the lean monitor."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP, Message

from streams.faustx.state import Changelog


def test_changelog_records_are_the_bytes_the_tables_own_codec_writes(tmp_path):
    """Changelog serializes JSON tables itself (speed); recovery decodes with the table's codec,
    so the bytes must be what that codec writes."""
    import faust

    from moodwire.kafka import faust_config
    from moodwire.settings import load_settings
    from streams.faustx.state import Changelog

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

    from streams.faustx.state import _partition_of

    keys = [b"Macro", b"Energy | Oil", "Ünïcode".encode(), b"", b"x" * 300]
    for count in (1, 3, 4, 12):
        partitions = list(range(count))
        for _ in range(2):  # computed, then cached
            assert [_partition_of(k, partitions) for k in keys] == \
                [(murmur2(k) & 0x7FFFFFFF) % count for k in keys]  # kafka-python's DefaultPartitioner
    assert _partition_of(None, [0, 1, 2, 3]) in {0, 1, 2, 3}


def test_the_aggregate_worker_keeps_no_per_event_faust_statistics(tmp_path):
    from moodwire.settings import load_settings
    from streams.aggregate.app import AggregateApp
    from streams.faustx.monitor import LeanMonitor

    worker = AggregateApp(load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": "127.0.0.1:9"}), sink=False,
                          datadir=str(tmp_path))
    monitor = worker.app.monitor
    assert isinstance(monitor, LeanMonitor)
    event = SimpleNamespace(message=Message("news.scored", 0, 5, 0.0, 0, None, b"k", b"v", None))
    assert monitor.on_stream_event_in(TP("news.scored", 0), 5, object(), event) is None
    monitor.on_table_get(worker.table, "k")
    assert monitor.events_total == 0 and not monitor.tables  # nothing counted
    monitor.on_tp_commit({TP("news.scored", 0): 6})  # what Faust still tracks: commits, sends, rebalances
    assert monitor.tp_committed_offsets[TP("news.scored", 0)] == 6
