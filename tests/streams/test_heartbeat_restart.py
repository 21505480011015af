"""A worker restarted after it folded everything still closes the last windows.

Since the watermark waits for the news.raw partitions still behind (I8), the last windows of a
quiet stream are closed by the idle heartbeat. The first worker here never closes by heartbeat
(idle after an hour); it folds every record and stops; the second, idle after 5 s, must close
every window, exactly."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.streams.aggregate_support import (WATCHLISTS, assert_windows_equal, expected_windows, final_windows,
                                             keys_of, produce, scored_items, start_aggregate, windows_of, with_copies)
from tests.streams.test_aggregate_worker import stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = ["Earnings", "Macro", "M&A | Investments"]


def _restarted_at_the_end(bootstrap, tmp_path):
    items = scored_items(TOPICS, 300, seed=41, spread=timedelta(hours=2), watchlists=WATCHLISTS)
    produce(bootstrap, items)
    expected = expected_windows(with_copies(items))
    keys = keys_of(TOPICS, WATCHLISTS)
    first = start_aggregate(bootstrap, tmp_path / "home1", tmp_path / "first.log",
                            extra={"MOODWIRE_AGGREGATE_IDLE": "1h"})
    try:
        deadline = time.monotonic() + 120
        while len({(w.topic, w.window, w.start) for w in windows_of(bootstrap, keys)}) < len(expected):
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(1)
        time.sleep(3)  # the markers settle (written after each micro-batch's effects)
    finally:
        stop(first)
    open_before = len(expected) - len({(w.topic, w.window, w.start) for w in windows_of(bootstrap, keys)
                                       if w.final})
    assert open_before > 0  # the last windows wait for the heartbeat
    second = start_aggregate(bootstrap, tmp_path / "home2", tmp_path / "second.log")
    try:
        finals = final_windows(bootstrap, keys, len(expected), timeout_s=90, process=second,
                               log=tmp_path / "second.log")
        assert_windows_equal(finals, expected)
    finally:
        stop(second)


def test_a_worker_restarted_at_the_logs_end_closes_the_last_windows_embedded(fresh_embedded, tmp_path):
    _restarted_at_the_end(fresh_embedded, tmp_path)


def test_a_worker_restarted_at_the_logs_end_closes_the_last_windows_apache_kafka(fresh_apache_kafka, tmp_path):
    _restarted_at_the_end(fresh_apache_kafka, tmp_path)
