"""Prometheus metrics of the streaming stages, served on MOODWIRE_METRICS_PORT."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class StageMetrics:
    """One registry per process; the names carry the stage (``moodwire_<stage>_…``)."""

    def __init__(self, stage: str) -> None:
        self.registry = CollectorRegistry()
        r, p = self.registry, f"moodwire_{stage}"
        self.items = Counter(f"{p}_items", "items processed", registry=r)
        self.errors = Counter(f"{p}_errors", "errors (feeds, batches, publishing)", ["kind"], registry=r)
        self.deadlettered = Counter(f"{p}_deadlettered", "messages sent to news.deadletter", registry=r)
        self.batch_size = Histogram(f"{p}_batch_size", "items per batch", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.queue_wait = Histogram(f"{p}_queue_wait_seconds", "time from first poll to batch close", registry=r,
                                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.inference = Histogram(f"{p}_inference_seconds", "model time per batch", registry=r,
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.items_per_s = Gauge(f"{p}_items_per_second", "throughput over the last batch", registry=r)
        self.alerts = Counter(f"{p}_alerts", "alert events sent", ["status"], registry=r)
        self.polls = Counter(f"{p}_polls", "feed polls", ["feed", "outcome"], registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        if port:
            start_http_server(port, addr=host, registry=self.registry)

    def record_poll(self, result) -> None:
        outcome = "error" if result.error else "not_modified" if result.not_modified else "ok"
        self.polls.labels(result.feed, outcome).inc()
        self.items.inc(result.published)
        if result.error:
            self.errors.labels("feed").inc()
