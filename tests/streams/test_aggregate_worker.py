"""news.scored → moodwire aggregate (real Faust worker processes) → sentiment.windows and the
store, on real brokers; expectations computed independently with pandas."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from moodwire.broker import free_port
from moodwire.records import MAX_DEAD_PAYLOAD, DeadLetter, decode
from moodwire.store import open_store, scored_news, topic_windows
from moodwire.topics import DEADLETTER
from tests.streams.aggregate_support import (
    T0,
    WATCHLISTS,
    assert_windows_equal,
    expected_windows,
    final_windows,
    keys_of,
    make,
    produce,
    scored_in_topic,
    scored_items,
    start_aggregate,
    windows_of,
    with_copies,
)
from tests.streams.test_classify import read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = ["Earnings", "Macro", "Energy | Oil", "Legal | Regulation", "Currencies"]
KEYS = keys_of(TOPICS, WATCHLISTS)  # the topics and the watchlists: every exactness test covers both


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_progress(bootstrap: str, topics: set[str], process: subprocess.Popen, log: Path,
                      timeout_s: float = 120) -> None:
    """Until the worker has emitted its first window records (it is mid-stream then)."""
    deadline = time.monotonic() + timeout_s
    while not windows_of(bootstrap, topics):
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the worker emitted nothing:\n" + log.read_text()[-3000:]
        time.sleep(0.2)


def wait_for_log(log: Path, text: str, times: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while log.read_text(errors="replace").count(text) < times:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{text!r} not logged {times} times:\n" + log.read_text()[-3000:]
        time.sleep(0.1)


def dead_letters(bootstrap: str) -> list[DeadLetter]:
    return read_all(bootstrap, DEADLETTER, lambda r: decode(DeadLetter, r.value))


def test_windows_are_exact_and_late_or_malformed_records_are_dead_lettered(fresh_embedded, tmp_path):
    items = scored_items(TOPICS, 1500, seed=11, watchlists=WATCHLISTS)
    rng = random.Random(5)
    late = [make("Earnings", T0 + timedelta(minutes=3 + i), rng, f"late{i}") for i in range(3)]
    big = b'{"title": "' + b"x" * 400_000 + b'"'  # malformed and large: its dead letter carries a cut payload
    garbage = [b"{not json", b'{"id": "x"}', big]
    produce(fresh_embedded, items + late, garbage)
    log = tmp_path / "aggregate.log"
    port = free_port()
    worker = start_aggregate(fresh_embedded, tmp_path / "home", log, extra={"MOODWIRE_METRICS_PORT": str(port)})
    try:
        expected = expected_windows(with_copies(items))
        assert any(k.startswith("watchlist:") for k in expected.topic)
        finals = final_windows(fresh_embedded, KEYS, len(expected), process=worker, log=log)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        lags = [line for line in metrics.splitlines() if line.startswith("moodwire_aggregate_consumer_lag{")]
        assert lags and all(line.endswith(" 0.0") for line in lags), lags  # all folded in
        # Late items are dead-lettered (reason late) and in no window.
        assert_windows_equal(finals, expected)
        letters = dead_letters(fresh_embedded)
        late_letters = [d for d in letters if d.reason == "late"]
        assert all(d.error.startswith("late:") and "watermark" in d.error for d in late_letters)
        assert sorted(decode(type(late[0]), base64.b64decode(d.payload_b64)).id for d in late_letters) == \
            sorted(i.id for i in late)
        malformed = [d for d in letters if d.stage == "aggregate" and d.reason != "late"]
        assert {d.reason for d in malformed} == {"malformed"}
        payloads = sorted(base64.b64decode(d.payload_b64) for d in malformed)
        assert payloads == sorted([b"{not json", b'{"id": "x"}', big[:MAX_DEAD_PAYLOAD]])
        [cut] = [d for d in malformed if "payload cut" in d.error]
        assert f"of {len(big)} bytes" in cut.error and f"news.scored[{cut.partition}]@{cut.offset}" in cut.error
        assert all("ScoredNews" in d.error for d in malformed)
        # Asked with SIGUSR2, a running worker logs what each task and thread is waiting on.
        os.killpg(worker.pid, signal.SIGUSR2)
        wait_for_log(log, "stack dump (SIGUSR2)", 1, worker, timeout_s=30)
        dump = log.read_text(errors="replace").split("stack dump (SIGUSR2)", 1)[1]
        assert "--- agent" in dump and "subscribe.<locals>.subscription_only" in dump, dump[:3000]
        assert "Consumer._drain_messages" in dump and "--- thread" in dump, dump[:3000]
    finally:
        stop(worker)
    assert worker.returncode == 0, log.read_text()[-3000:]


def assert_exact(finals: dict, expected, text: str) -> None:
    """``assert_windows_equal``, failing with what the workers said about recovery, seeks, skips
    and gaps, and the last stack dump (``final_windows`` asks for one when it times out)."""
    try:
        assert_windows_equal(finals, expected)
    except AssertionError as exc:
        said = [line for line in text.splitlines()
                if any(w in line for w in ("recovered:", "seeking", "never delivered", "WARNING", "ERROR", "heartbeat"))]
        dump = text[text.rfind("stack dump (SIGUSR2)"):][:12000] if "stack dump (SIGUSR2)" in text else ""
        raise AssertionError(f"{exc}\nworker log (selected lines):\n" + "\n".join(said[-60:]) + "\n" + dump) from exc


def _kill_and_restart(bootstrap: str, tmp_path: Path, store: str, kills: int = 2) -> None:
    items = scored_items(TOPICS, 4000, seed=21, watchlists=WATCHLISTS)
    produce(bootstrap, items)
    log = tmp_path / "aggregate.log"
    extra = {"MOODWIRE_AGGREGATE_BATCH": "40"}
    datadir = tmp_path / "faust-data"
    worker = start_aggregate(bootstrap, tmp_path / "home", log, store=store, datadir=datadir, extra=extra)
    try:
        for kill in range(kills):
            # Mid-stream: this process recovered its table and is processing (batches of 40).
            wait_for_log(log, "recovered:", kill + 1, worker)
            time.sleep(random.uniform(0.3, 1.5))
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            worker = start_aggregate(bootstrap, tmp_path / "home", log, store=store, datadir=datadir, extra=extra)
        stored = scored_in_topic(bootstrap, set(TOPICS))
        assert {i.id for i in stored} == {i.id for i in items}
        expected = expected_windows(stored)
        finals = final_windows(bootstrap, KEYS, len(expected), timeout_s=300, process=worker, log=log)
        assert [d.error for d in dead_letters(bootstrap)] == []
        text = log.read_text()
        assert_exact(finals, expected, text)
        assert text.count("recovered:") >= kills + 1 and "recovered: 0 entries" in text
    finally:
        stop(worker)


def test_sigkill_mid_stream_then_restart_gives_exact_windows_memory_store_embedded(fresh_embedded, tmp_path):
    _kill_and_restart(fresh_embedded, tmp_path, "memory://")


def test_sigkill_mid_stream_then_restart_gives_exact_windows_rocksdb_store_apache_kafka(fresh_apache_kafka, tmp_path):
    _kill_and_restart(fresh_apache_kafka, tmp_path, "rocksdb://")


def test_two_workers_share_the_partitions_and_one_takes_over(fresh_embedded, tmp_path):
    items = scored_items(TOPICS, 4000, seed=31, watchlists=WATCHLISTS)
    produce(fresh_embedded, items)
    extra = {"MOODWIRE_AGGREGATE_BATCH": "40"}
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [start_aggregate(fresh_embedded, tmp_path / f"home{i}", logs[i], extra=extra) for i in range(2)]
    try:
        wait_for_progress(fresh_embedded, set(TOPICS), workers[0], logs[0])
        stop(workers[0])  # a clean stop: its partitions move to the other worker
        assert workers[0].returncode == 0, logs[0].read_text()[-3000:]
        stored = scored_in_topic(fresh_embedded, set(TOPICS))
        assert {i.id for i in stored} == {i.id for i in items}
        expected = expected_windows(stored)
        finals = final_windows(fresh_embedded, KEYS, len(expected), timeout_s=300,
                               process=workers[1], log=logs[1])
        assert_windows_equal(finals, expected)
        assert "partitions" in logs[0].read_text() and "partitions" in logs[1].read_text()
    finally:
        for worker in workers:
            stop(worker)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_store_sink_holds_every_item_once_and_the_final_windows(backend, fresh_embedded, tmp_path, request):
    url = (f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url"))
    engine = open_store(url)
    with engine.begin() as conn:  # the PostgreSQL server is shared by the session
        conn.execute(scored_news.delete())
        conn.execute(topic_windows.delete())
    items = scored_items(TOPICS, 800, seed=41, watchlists=WATCHLISTS)
    produce(fresh_embedded, items + items[:50])  # duplicates are upserted, not added
    log = tmp_path / "aggregate.log"
    worker = start_aggregate(fresh_embedded, tmp_path / "home", log, store_url=url, sink=True)
    try:
        expected = expected_windows(with_copies(items))
        final_windows(fresh_embedded, KEYS, len(expected), process=worker, log=log)
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                rows = conn.execute(select(scored_news)).mappings().all()
                windows = conn.execute(select(topic_windows).where(topic_windows.c.final.is_(True))).mappings().all()
            if (len(rows) == len(items) and len(windows) == len(expected)) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        stop(worker)
    assert sorted(r["id"] for r in rows) == sorted(i.id for i in items)  # a watchlist copy is no second row
    by_id = {i.id: i for i in items}
    for row in rows:
        assert abs(row["score"] - by_id[row["id"]].score) < 1e-12 and row["topic"] == by_id[row["id"]].topic
        assert (row["watchlists"] or []) == by_id[row["id"]].watchlists
    got = {(w["topic"], w["window"], w["start"].replace(tzinfo=T0.tzinfo) if w["start"].tzinfo is None
            else w["start"]): w for w in windows}
    assert len(got) == len(expected)
    for row in expected.itertuples(index=False):
        stored = got[(row.topic, row.window, row.start.to_pydatetime())]
        assert stored["count"] == row.count and abs(stored["mean_score"] - row.mean_score) < 1e-9
        assert stored["kind"] == ("watchlist" if row.topic.startswith("watchlist:") else "topic")


def test_an_unreachable_broker_or_missing_topics_fail_fast_with_what_to_fix(tmp_path):
    import sys

    from moodwire.broker import embedded_broker, free_port

    env = {**os.environ, "MOODWIRE_HOME": str(tmp_path), "MOODWIRE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    run = subprocess.run([sys.executable, "-m", "moodwire_cli", "aggregate"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "error: no Kafka broker answers at" in run.stderr
    with embedded_broker(create=False) as broker:
        env["MOODWIRE_KAFKA_BOOTSTRAP"] = broker.bootstrap
        run = subprocess.run([sys.executable, "-m", "moodwire_cli", "aggregate"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert run.returncode == 2 and "news.scored" in run.stderr and "moodwire topics create" in run.stderr


def _commit_past_the_marker(bootstrap: str, tmp_path: Path, store: str) -> None:
    """The group's committed offsets jump past what the worker's state has folded (what a
    previous incarnation committing records it had set aside would leave): the restarted
    worker must go back to its state's own position and still give exactly the expected
    windows, whether or not news arrives after the jump."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    from moodwire.kafka import commit_or_redeliver
    from moodwire.topics import NEWS_SCORED

    first = scored_items(TOPICS, 1000, seed=33)
    produce(bootstrap, first)
    log = tmp_path / "aggregate.log"
    datadir = tmp_path / "faust-data"
    worker = start_aggregate(bootstrap, tmp_path / "home", log, store=store, datadir=datadir)
    try:
        final_windows(bootstrap, set(TOPICS), len(expected_windows(first)), process=worker, log=log)
        stop(worker)
        probe = KafkaConsumer(bootstrap_servers=bootstrap)
        parts = [TopicPartition(NEWS_SCORED, p) for p in sorted(probe.partitions_for_topic(NEWS_SCORED))]
        folded = probe.end_offsets(parts)
        second = [i.model_copy(update={"published_at": i.published_at + timedelta(hours=3)})
                  for i in scored_items(TOPICS, 2000, seed=34)]
        produce(bootstrap, second)
        ends = probe.end_offsets(parts)
        probe.close()
        # Past the worker's state: on half the partitions to their end (nothing after the jump
        # shows the worker a hole), on the others over three quarters of the new records.
        jump = {tp: ends[tp] if tp.partition % 2 else folded[tp] + (ends[tp] - folded[tp]) * 3 // 4 for tp in parts}
        # Committed by a member of the group (the embedded broker refuses an admin's commit for a
        # group that had members: UnknownMemberIdError), under the protocol name of Faust's
        # assignor (it refuses another one for that group: InconsistentGroupProtocolError).
        class AsFaust(RoundRobinPartitionAssignor):
            name = "faust"

        member = KafkaConsumer(bootstrap_servers=bootstrap, group_id="moodwire-aggregate", enable_auto_commit=False,
                               partition_assignment_strategy=[AsFaust])
        # The topic's metadata first: a member that led the join without it logged "No partition
        # metadata for topic news.scored" and did not hold the partitions 60 s later (kafka-python
        # 3.0.12, Apache Kafka, 1 run in 3 loops).
        assert member.partitions_for_topic(NEWS_SCORED), "no metadata for news.scored"
        member.subscribe([NEWS_SCORED])
        deadline = time.monotonic() + 60
        while True:
            member.poll(timeout_ms=100, max_records=1)
            if len(member.assignment()) == len(parts) and commit_or_redeliver(member, jump, "the jump"):
                break
            assert time.monotonic() < deadline, "the group's offsets could not be moved"
        member.close()
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        moved = admin.list_group_offsets("moodwire-aggregate")["moodwire-aggregate"]
        admin.close()
        assert {tp: moved[tp].offset for tp in parts} == jump
        worker = start_aggregate(bootstrap, tmp_path / "home", log, store=store, datadir=datadir)
        expected = expected_windows(scored_in_topic(bootstrap, set(TOPICS)))
        finals = final_windows(bootstrap, KEYS, len(expected), timeout_s=240, process=worker, log=log)
        text = log.read_text()
        assert_exact(finals, expected, text)
        assert text.count("is past what the state has folded in; reading from") == len(parts)
    finally:
        stop(worker)


def test_committed_offsets_past_the_state_are_sought_back_memory_store_embedded(fresh_embedded, tmp_path):
    _commit_past_the_marker(fresh_embedded, tmp_path, "memory://")


def test_committed_offsets_past_the_state_are_sought_back_rocksdb_store_apache_kafka(fresh_apache_kafka, tmp_path):
    _commit_past_the_marker(fresh_apache_kafka, tmp_path, "rocksdb://")
