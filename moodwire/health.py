"""What a stage's ``/healthz`` says: ok, or unhealthy with the reasons (HTTP 503).

Two checks, each from outside the stage's own loop, so a stuck loop cannot hide itself:

- **broker**: a probe thread opens a TCP connection to the bootstrap servers every few seconds;
  none reachable for longer than ``MOODWIRE_HEALTH_BROKER_TIMEOUT`` is unhealthy, with the
  address and the last error.
- **progress**: records waiting (the stage's consumer-lag gauge above 0) while its items
  counter has not moved for longer than ``MOODWIRE_HEALTH_STALL`` is unhealthy.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry


class Health:
    def __init__(self, bootstrap: str | None, broker_timeout_s: float, stall_s: float, registry: CollectorRegistry,
                 stage: str, clock: Callable[[], float] = time.monotonic) -> None:
        """``bootstrap``: the Kafka servers (None: a stage without a broker)."""
        self.servers = [_host_port(s) for s in bootstrap.split(",")] if bootstrap else []
        self.broker_timeout_s, self.stall_s = broker_timeout_s, stall_s
        self.registry, self.prefix, self.clock = registry, f"moodwire_{stage}", clock
        started = clock()
        self.broker_ok_at, self.broker_error = started, ""
        self.items, self.items_at = 0.0, started
        self._stop = threading.Event()

    def start(self, every_s: float | None = None) -> "Health":
        every = every_s if every_s is not None else max(0.5, min(5.0, self.broker_timeout_s / 4))
        threading.Thread(target=self._probe_loop, args=(every,), name="health", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _probe_loop(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.probe()
            self._stop.wait(every_s)

    def probe(self) -> None:
        """One round: can a bootstrap server be reached; has the items counter moved."""
        for host, port in self.servers:
            try:
                with socket.create_connection((host, port), timeout=2):
                    self.broker_ok_at, self.broker_error = self.clock(), ""
                    break
            except OSError as exc:
                self.broker_error = f"{host}:{port}: {exc.strerror or exc}"
        items = self.registry.get_sample_value(f"{self.prefix}_items_total") or 0.0
        if items != self.items or self.waiting() == 0:  # moved, or nothing to do: not stalled
            self.items, self.items_at = items, self.clock()

    def waiting(self) -> float:
        """Records the stage's consumers have not reached (its lag gauge, summed)."""
        total = 0.0
        for family in self.registry.collect():
            if family.name == f"{self.prefix}_consumer_lag":
                total += sum(sample.value for sample in family.samples)
        return total

    def verdict(self) -> list[str]:
        """Why the stage is unhealthy; empty when it is healthy."""
        now, reasons = self.clock(), []
        if self.servers and now - self.broker_ok_at > self.broker_timeout_s:
            reasons.append(f"broker unreachable for {now - self.broker_ok_at:.0f} s ({self.broker_error}); "
                           "check MOODWIRE_KAFKA_BOOTSTRAP and the broker")
        waiting = self.waiting()
        if waiting > 0 and now - self.items_at > self.stall_s:
            reasons.append(f"no progress: {waiting:.0f} records waiting and none processed for "
                           f"{now - self.items_at:.0f} s")
        return reasons


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]") or "localhost", int(port or 9092)
