"""A fault in the fold, in a real worker on a real broker: the worker does not stop (a stop would
be a crash loop: the restarted worker reads the same batch), the records the fold raises on are
dead-lettered with reason ``failed``, and every other window is exact.

The fault is injected in the worker process: a ``sitecustomize`` module on its PYTHONPATH makes
the fold's ``point_of`` raise for headlines that say POISON."""

from __future__ import annotations

import base64
import os
import random
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from moodwire.records import ScoredNews, decode
from tests.streams.aggregate_support import T0, assert_windows_equal, expected_windows, final_windows, keys_of
from tests.streams.aggregate_support import make, produce, scored_items, start_aggregate
from tests.streams.test_aggregate_worker import dead_letters, stop, wait_for_log

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOPICS = ["Earnings", "Macro"]
INJECT = """
    import streams.aggregate.fold as fold

    _real = fold.point_of


    def point_of(item):
        if "POISON" in item.title:
            raise RuntimeError("injected fault")
        return _real(item)


    fold.point_of = point_of
"""


def test_a_record_the_fold_raises_on_is_dead_lettered_and_the_worker_goes_on(fresh_embedded, tmp_path):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(textwrap.dedent(INJECT))
    items = scored_items(TOPICS, 400, seed=31)
    rng = random.Random(2)
    # published where they arrive (items spread over 3 h in order): on time, not late
    poison = [make(TOPICS[i % 2], T0 + timedelta(minutes=minute), rng, f"POISON {i}")
              for i, minute in enumerate((68, 68.5, 136))]
    produce(fresh_embedded, items[:150] + poison[:2] + items[150:300] + poison[2:] + items[300:])
    log = tmp_path / "aggregate.log"
    worker = start_aggregate(fresh_embedded, tmp_path / "home", log,
                             extra={"PYTHONPATH": f"{inject}{os.pathsep}{ROOT}"})
    try:
        expected = expected_windows(items)
        finals = final_windows(fresh_embedded, keys_of(TOPICS), len(expected), process=worker, log=log)
        assert_windows_equal(finals, expected)
        wait_for_log(log, "each is folded alone", 1, worker)
        deadline = time.monotonic() + 60
        while len(failed := [d for d in dead_letters(fresh_embedded) if d.reason == "failed"]) < 3:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert sorted(decode(ScoredNews, base64.b64decode(d.payload_b64)).id for d in failed) == \
            sorted(p.id for p in poison)
        assert all(d.stage == "aggregate" and "RuntimeError('injected fault')" in d.error for d in failed)
        assert worker.poll() is None  # still running: no crash, no loop
    finally:
        stop(worker)
    assert worker.returncode == 0, log.read_text()[-3000:]
