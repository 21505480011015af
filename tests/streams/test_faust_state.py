"""``InSequence``: a partition's events are folded in only as an unbroken run of offsets from
the state's marker; past a hole the partition is sought back (the records come again)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streams.aggregate import marker_key
from streams.faust_state import InSequence
from streams.metrics import StageMetrics


class Consumer:  # records the seeks the agent asks for (the real consumer is exercised in the worker tests)
    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks += list(partitions.items())


class Event:  # weak-referenceable, as Faust's events (InSequence makes one current)
    def __init__(self, offset: int) -> None:
        self.message = SimpleNamespace(offset=offset)


def events(*offsets: int) -> list:
    return [Event(o) for o in offsets]


def offsets(admitted: list) -> list[int]:
    return [e.message.offset for e in admitted]


def test_unbroken_runs_pass_and_a_hole_seeks_back_once_then_gives_up_loudly():
    app = SimpleNamespace(consumer=Consumer())
    metrics = StageMetrics("test")
    table = SimpleNamespace(data={marker_key(1): {"offset": 9}})  # partition 0: nothing folded yet
    seq = InSequence(app, "news.scored", table, metrics, give_up_s=3600)

    def admit(partition, *offs):
        return offsets(asyncio.run(seq.admit(partition, events(*offs))))

    assert admit(0, 5, 4, 6) == [4, 5, 6]             # nothing folded yet: from the first offset seen
    assert admit(1, 11, 10, 12) == [10, 11, 12]       # sorted, from the marker's next offset
    assert admit(1, 8, 9, 10, 11) == [8, 9, 10, 11]   # replays below the marker pass (the state skips them)
    assert app.consumer.seeks == []
    assert admit(1, 10, 11, 15, 16) == [10, 11]       # a hole inside the batch: the run before it only
    assert app.consumer.seeks == [(TP("news.scored", 1), 12)]
    table.data[marker_key(1)] = {"offset": 11}  # the agent folded 10 and 11
    assert admit(1, 13, 14) == []                      # records fetched before the seek: set aside
    assert app.consumer.seeks == [(TP("news.scored", 1), 12)]  # sought back once per hole
    assert metrics.rewinds._value.get() == 1

    seq.give_up_s = 0  # the hole persists: the records are gone (retention): carry on, counted as an error
    assert admit(1, 13, 14) == [13, 14]
    assert metrics.errors.labels("offset_gap")._value.get() == 1


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
        assert table.data[key] is value
        partition, raw_key, payload = changelog.records[-1]
        assert partition == 2
        assert raw_key == table.changelog_topic.prepare_key(key, table.key_serializer)[0]
        assert payload == table.changelog_topic.prepare_value(value, table.value_serializer)[0]
    changelog.put(2, "~partition/3", None)  # a delete: a tombstone, and gone locally
    assert changelog.records[-1][2] is None and "~partition/3" not in table.data
