"""News as it really arrives, through real ``moodwire aggregate`` processes on both brokers:
duplicates counted once, a very late item that erases nothing, a year-2100 date that is
dead-lettered and stops nothing. Expectations computed independently with pandas."""

from __future__ import annotations

import base64
import random
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from moodwire.broker import free_port
from moodwire.records import ScoredNews, decode
from tests.streams.aggregate_support import (
    T0,
    WATCHLISTS,
    assert_windows_equal,
    expected_windows,
    final_windows,
    keys_of,
    make,
    produce,
    scored_items,
    start_aggregate,
    with_copies,
)
from tests.streams.test_aggregate_worker import dead_letters, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = ["Earnings", "Macro", "Currencies"]
KEYS = keys_of(TOPICS, WATCHLISTS)


def _duplicates_late_and_future(bootstrap: str, tmp_path: Path) -> None:
    rng = random.Random(41)
    first = scored_items(TOPICS, 400, seed=41, watchlists=WATCHLISTS)
    later = scored_items(TOPICS, 100, seed=42, watchlists=WATCHLISTS)
    later = [i.model_copy(update={"published_at": i.published_at + timedelta(days=3)}) for i in later]
    one = make("Macro", T0 + timedelta(hours=3, minutes=5), rng, "sent 2000 times")  # after first, in order
    very_late = make("Earnings", T0 + timedelta(minutes=40), rng, "very late")  # its windows are final by then
    broken = make("Currencies", datetime(2100, 1, 1, tzinfo=timezone.utc), rng, "pubDate 2100")
    sent = first + first[:200] * 4 + [one] * 2000 + later[:50] + [very_late, broken] + later[50:]
    produce(bootstrap, sent)
    log = tmp_path / "aggregate.log"
    port = free_port()
    worker = start_aggregate(bootstrap, tmp_path / "home", log, extra={"MOODWIRE_METRICS_PORT": str(port)})
    try:
        counted = first + [one] + later
        expected = expected_windows(with_copies(counted))
        finals = final_windows(bootstrap, KEYS, len(expected), timeout_s=300, process=worker, log=log)
        assert_windows_equal(finals, expected)  # each item once; nothing erased by the very late item
        letters = dead_letters(bootstrap)
        by_reason = {}
        for letter in letters:
            item = decode(ScoredNews, base64.b64decode(letter.payload_b64))
            by_reason.setdefault(letter.reason, []).append(item.id)
        assert by_reason == {"late": [very_late.id], "future": [broken.id]}, by_reason
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        [dups] = [line for line in metrics.splitlines() if line.startswith("moodwire_aggregate_duplicates_total ")]
        repeats = len(with_copies(first[:200] * 4)) + 1999
        assert float(dups.split()[1]) >= repeats  # a producer retry may store one more copy
    finally:
        stop(worker)
    assert worker.returncode == 0, log.read_text()[-3000:]


def test_duplicates_a_very_late_item_and_a_2100_date_embedded(fresh_embedded, tmp_path):
    _duplicates_late_and_future(fresh_embedded, tmp_path)


def test_duplicates_a_very_late_item_and_a_2100_date_apache_kafka(fresh_apache_kafka, tmp_path):
    _duplicates_late_and_future(fresh_apache_kafka, tmp_path)
