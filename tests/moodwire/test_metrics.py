"""Every long-running stage's /metrics (Prometheus text format) and /healthz, over real HTTP."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from moodwire.broker import free_port
from moodwire.errors import SettingsError
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
