"""A lost broker is visible: a real ``moodwire aggregate`` whose embedded broker is stopped
answers /healthz 503 with the reason, and logs the clients' connection errors in a few lines."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from moodwire.broker import embedded_broker, free_port
from tests.streams.aggregate_support import produce, scored_items, start_aggregate
from tests.streams.test_aggregate_worker import stop, wait_for_progress

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_lost_broker_turns_health_to_503_and_its_errors_into_few_lines(tmp_path):
    port = free_port()
    log = tmp_path / "aggregate.log"
    with embedded_broker(partitions=4) as broker:
        produce(broker.bootstrap, scored_items(["Earnings", "Macro"], 200, seed=3))
        worker = start_aggregate(broker.bootstrap, tmp_path / "home", log,
                                 extra={"MOODWIRE_METRICS_PORT": str(port), "MOODWIRE_HEALTH_BROKER_TIMEOUT": "3s"})
        try:
            wait_for_progress(broker.bootstrap, {"Earnings", "Macro"}, worker, log)
            assert health(port) == (200, health(port)[1]) and health(port)[1]["status"] == "ok"
            broker.stop()  # the broker goes away
            lost = time.monotonic()
            deadline = lost + 30
            status, body = health(port)
            while status == 200 and time.monotonic() < deadline:
                time.sleep(0.5)
                status, body = health(port)
            assert status == 503 and body["status"] == "unhealthy", body
            assert any(r.startswith("broker unreachable for") and broker.bootstrap in r for r in body["reasons"])
            time.sleep(max(0.0, lost + 40 - time.monotonic()))  # 40 s without a broker
            assert worker.poll() is None, log.read_text()[-3000:]
        finally:
            stop(worker)
    text = log.read_text(errors="replace")
    after = text[text.find("Ready"):]
    complaints = [line for line in after.splitlines() if re.match(r"\[[^]]+\] \[\d+\] \[(ERROR|WARNING)\]", line)]
    assert len(complaints) <= 60, f"{len(complaints)} lines:\n" + "\n".join(complaints[-40:])
