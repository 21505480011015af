"""Every long-running stage's /metrics (Prometheus text format) and /healthz, over real HTTP."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from moodwire.broker import free_port
from moodwire.errors import SettingsError
from moodwire.health import Health
from moodwire.metrics import StageMetrics


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_parse_as_prometheus_text_and_health_answers():
    metrics = StageMetrics("notify")
    metrics.items.inc(3)
    metrics.alerts.labels("delivered_firing").inc()
    metrics.errors.labels("delivery_retry").inc(2)
    port = free_port()
    server = metrics.serve(port)
    try:
        status, kind, text = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and kind.startswith("text/plain; version=")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        assert samples[("moodwire_notify_items_total", ())] == 3
        assert samples[("moodwire_notify_alerts_total", (("status", "delivered_firing"),))] == 1
        assert samples[("moodwire_notify_errors_total", (("kind", "delivery_retry"),))] == 2
        status, kind, text = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(text)["stage"] == "notify" and json.loads(text)["status"] == "ok"
        assert get(f"http://127.0.0.1:{port}/other")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_taken_metrics_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SettingsError, match=f"cannot serve metrics on 127.0.0.1:{port}.*MOODWIRE_METRICS_PORT"):
            StageMetrics("classify").serve(port)


def test_serving_is_off_with_port_zero():
    assert StageMetrics("aggregate").serve(0) is None


def test_health_answers_503_with_the_reason_when_the_broker_is_away_and_ok_when_it_is_back():
    with socket.socket() as listener:  # a "broker" that accepts connections on loopback
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        broker_port = listener.getsockname()[1]
        metrics = StageMetrics("classify")
        port = free_port()
        server = metrics.serve(port, bootstrap=f"127.0.0.1:{broker_port}", broker_timeout_s=1.5, stall_s=60)
        try:
            status, _, text = get(f"http://127.0.0.1:{port}/healthz")
            assert status == 200 and json.loads(text)["status"] == "ok"
            listener.close()  # the broker goes away
            deadline = time.monotonic() + 20
            while status == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
                status, _, text = get(f"http://127.0.0.1:{port}/healthz")
            body = json.loads(text)
            assert status == 503 and body["status"] == "unhealthy", text
            [reason] = body["reasons"]
            assert reason.startswith("broker unreachable for") and f"127.0.0.1:{broker_port}" in reason
            assert "MOODWIRE_KAFKA_BOOTSTRAP" in reason
            with socket.socket() as back:  # and comes back on the same port
                back.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                back.bind(("127.0.0.1", broker_port))
                back.listen()
                deadline = time.monotonic() + 20
                while status == 503 and time.monotonic() < deadline:
                    time.sleep(0.2)
                    status, _, text = get(f"http://127.0.0.1:{port}/healthz")
                assert status == 200, text
        finally:
            metrics.health.stop()
            server.shutdown()
            server.server_close()


def test_health_answers_503_when_records_wait_and_none_is_processed():
    now = [0.0]
    metrics = StageMetrics("aggregate")
    health = Health(None, 30, 120, metrics.registry, "aggregate", clock=lambda: now[0])
    health.probe()
    assert health.verdict() == []
    metrics.lag.labels("news.scored", "0").set(40)  # records arrive; nothing is processed
    now[0] = 100
    health.probe()
    assert health.verdict() == []  # not yet two minutes
    now[0] = 200
    health.probe()
    assert health.verdict() == ["no progress: 40 records waiting and none processed for 200 s"]
    metrics.items.inc(40)  # it moves again
    health.probe()
    assert health.verdict() == []
