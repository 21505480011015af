"""Prometheus metrics of the streaming stages, served on MOODWIRE_METRICS_PORT."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from moodwire.health import Health


class StageMetrics:
    """One registry per process; the names carry the stage (``moodwire_<stage>_…``)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.health: Health | None = None  # once served
        self._lag_at = 0.0  # when record_lag last ran
        self.registry = CollectorRegistry()
        r, p = self.registry, f"moodwire_{stage}"
        self.items = Counter(f"{p}_items", "items processed", registry=r)
        self.errors = Counter(f"{p}_errors", "errors (feeds, batches, publishing)", ["kind"], registry=r)
        self.deadlettered = Counter(f"{p}_deadlettered", "messages sent to news.deadletter", registry=r)
        self.duplicates = Counter(f"{p}_duplicates", "records of an item already taken for their key, dropped",
                                  registry=r)
        self.batch_size = Histogram(f"{p}_batch_size", "items per batch", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.queue_wait = Histogram(f"{p}_queue_wait_seconds", "time from first poll to batch close", registry=r,
                                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.inference = Histogram(f"{p}_inference_seconds", "model time per batch", registry=r,
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.items_per_s = Gauge(f"{p}_items_per_second", "throughput over the last batch", registry=r)
        self.alerts = Counter(f"{p}_alerts", "alert events sent", ["status"], registry=r)
        self.lag = Gauge(f"{p}_consumer_lag", "records between the consumer's position and the partition's end "
                         "(from the broker's last fetch response)", ["topic", "partition"], registry=r)
        self.rewinds = Counter(f"{p}_rewinds", "partitions sought back to the state's next offset (the consumer "
                               "delivered past it)", registry=r)
        self.polls = Counter(f"{p}_polls", "feed polls", ["feed", "outcome"], registry=r)

    def serve_for(self, settings) -> ThreadingHTTPServer | None:
        """``serve`` with a deployment's port, address, broker and health limits (``Settings``)."""
        broker, stall = settings.health_spans
        return self.serve(settings.metrics_port, settings.metrics_host, settings.kafka_bootstrap,
                          broker.total_seconds(), stall.total_seconds())

    def serve(self, port: int, host: str = "127.0.0.1", bootstrap: str | None = None, broker_timeout_s: float = 30,
              stall_s: float = 120) -> ThreadingHTTPServer | None:
        """``/metrics`` (Prometheus text format) and ``/healthz`` (JSON: stage, uptime; HTTP 503
        with the reasons when ``moodwire.health`` finds the broker away or the stage stalled) on
        a daemon thread; nothing when ``port`` is 0."""
        if not port:
            return None
        registry, stage, started = self.registry, self.stage, time.monotonic()
        health = self.health = Health(bootstrap, broker_timeout_s, stall_s, registry, stage)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.split("?")[0] == "/metrics":
                    body, kind, status = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path.split("?")[0] == "/healthz":
                    reasons = health.verdict()
                    body = json.dumps({"status": "unhealthy" if reasons else "ok", "stage": stage,
                                       "uptime_s": round(time.monotonic() - started, 1),
                                       **({"reasons": reasons} if reasons else {})}).encode()
                    kind, status = "application/json", 503 if reasons else 200
                else:
                    body, kind, status = b"try /metrics or /healthz\n", "text/plain", 404
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        try:
            server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            from moodwire.errors import SettingsError

            raise SettingsError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} "
                              "(choose another MOODWIRE_METRICS_PORT, or 0 for none)") from None
        health.start()
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server

    def record_lag(self, consumer, every_s: float = 1.0) -> None:
        """Lag of every assigned partition of a kafka-python consumer whose end offset the broker
        reported in a fetch; partitions without one are left out (never guessed). At most once
        per ``every_s`` (it is called from hot loops)."""
        now = time.monotonic()
        if now - self._lag_at < every_s:
            return
        self._lag_at = now
        try:
            assigned = consumer.assignment()
        except Exception:  # noqa: BLE001 - during a rebalance there is nothing to report
            return
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = consumer.position(tp, timeout_ms=50)
            except Exception:  # noqa: BLE001 - revoked meanwhile or no position yet
                continue
            if position is not None:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

    def record_poll(self, result) -> None:
        outcome = "error" if result.error else "not_modified" if result.not_modified else "ok"
        self.polls.labels(result.feed, outcome).inc()
        self.items.inc(result.published)
        if result.error:
            self.errors.labels("feed").inc()
