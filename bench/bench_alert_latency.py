"""Alert latency: from a decisive headline's arrival on ``news.raw`` to its alert's delivery at
a loopback webhook, through the real stages (embedded broker, ``moodwire classify`` on the CPU
engine, ``moodwire aggregate``, ``moodwire notify``).

Each trial publishes one strongly negative headline naming its own watchlist (so each is a
new alert episode), stamped with the wall clock as its publish time. Two rules see the same
headlines:

- ``early``: ``negative_count {at_least: 1, score_below: -0.5}`` with ``for: 0s``, judged on
  the partial windows the aggregate worker sends every second (alerts/evaluate.py);
- ``final`` (the baseline, how every rule was judged before): the same condition with
  ``for: 1s``, judged once its window is final (its end plus the allowed lateness passed).

Both use 10-minute windows sliding every minute and 30 s of lateness, so the baseline's wait
is short enough to measure; with the shipped 24h/1h windows and 10 minutes it is up to 70
minutes. Prints p50 / p99 / max per rule, and whether every trial's alert came.

    python bench/bench_alert_latency.py [--trials 40] [--gap 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moodwire.broker import embedded_broker, free_port  # noqa: E402
from moodwire.records import NewsItem, item_id  # noqa: E402
from moodwire.topics import NEWS_RAW  # noqa: E402

RULES = """rules:
  - {name: early, watchlists: all, window: 10m, when: {negative_count: {at_least: 1, score_below: -0.5}},
     keep_firing_for: 1h, repeat_interval: 24h, severity: warning}
  - {name: final, watchlists: all, window: 10m, when: {negative_count: {at_least: 1, score_below: -0.5}},
     for: 1s, keep_firing_for: 1h, repeat_interval: 24h, severity: warning}
"""
HEADLINE = "{name} collapses as regulators seize the lender and depositors flee"


class Hook(BaseHTTPRequestHandler):
    arrivals: list[tuple[float, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.arrivals.append((time.time(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def stage(name: str, env: dict, logs: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "moodwire_cli", name, *args], env=env, cwd=ROOT,
                            stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--gap", type=float, default=3.0, help="seconds between the trials' headlines")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the last alerts")
    args = p.parse_args()
    from kafka import KafkaProducer

    with tempfile.TemporaryDirectory() as tmp, embedded_broker(partitions=4) as broker:
        tmp_path = Path(tmp)
        names = [f"Zephyrbank{i:03d}" for i in range(args.trials + 1)]  # [0]: the warm-up
        (tmp_path / "watchlists.yaml").write_text("watchlists:\n" + "".join(
            f"  - {{name: {n}, keywords: [{n}]}}\n" for n in names))
        (tmp_path / "rules.yaml").write_text(RULES)
        port = free_port()
        (tmp_path / "notify.yaml").write_text(
            "route: {receiver: hook, group_by: [rule, topic], group_wait: 0s, group_interval: 0s}\n"
            f"receivers:\n  - {{name: hook, webhook: {{url: 'http://127.0.0.1:{port}/hook'}}}}\n")
        server = ThreadingHTTPServer(("127.0.0.1", port), Hook)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOODWIRE_")},
               "MOODWIRE_HOME": str(tmp_path / "home"), "MOODWIRE_KAFKA_BOOTSTRAP": broker.bootstrap,
               "MOODWIRE_DEVICE": "cpu", "MOODWIRE_WATCHLISTS": str(tmp_path / "watchlists.yaml"),
               "MOODWIRE_ALERT_RULES": str(tmp_path / "rules.yaml"), "MOODWIRE_AGGREGATE_WINDOWS": "10m/1m",
               "MOODWIRE_AGGREGATE_LATENESS": "30s", "MOODWIRE_AGGREGATE_IDLE": "5s",
               "MOODWIRE_NOTIFY_CONFIG": str(tmp_path / "notify.yaml"),
               "MOODWIRE_STORE_URL": f"sqlite:///{tmp_path}/moodwire.db", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1"}
        stages = [stage("classify", env, tmp_path), stage("aggregate", env, tmp_path, "--no-sink"),
                  stage("notify", env, tmp_path)]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
        sent: dict[str, float] = {}

        def publish(name: str) -> None:
            now = datetime.now(timezone.utc)
            title = HEADLINE.format(name=name)
            item = NewsItem(id=item_id(None, "bench", title), source="bench", title=title, published_at=now,
                            fetched_at=now)
            producer.send(NEWS_RAW, key=item.id.encode(), value=item.encode()).get(timeout=30)
            sent[f"watchlist:{name}"] = time.time()

        def delivered() -> dict[tuple[str, str], float]:
            out: dict[tuple[str, str], float] = {}
            for at, body in list(Hook.arrivals):
                for alert in body["alerts"]:
                    if alert["status"] == "firing":
                        out.setdefault((alert["rule"], alert["topic"]), at)
            return out

        try:
            publish(names[0])  # warm-up: every stage started, the model loaded, the group joined
            deadline = time.monotonic() + 600
            while ("early", f"watchlist:{names[0]}") not in delivered():
                for s in stages:
                    if s.poll() is not None:
                        raise SystemExit(f"a stage exited ({s.args[3]}): see {tmp_path}")
                if time.monotonic() > deadline:
                    raise SystemExit("the warm-up alert never came")
                time.sleep(0.2)
            print(f"warm-up alert delivered; {args.trials} trials, one every {args.gap:g} s", flush=True)
            for name in names[1:]:
                publish(name)
                time.sleep(args.gap)
            keys = [f"watchlist:{n}" for n in names[1:]]
            deadline = time.monotonic() + args.wait
            while time.monotonic() < deadline:
                got = delivered()
                if all((r, k) in got for r in ("early", "final") for k in keys):
                    break
                time.sleep(1)
            got = delivered()
        finally:
            producer.close()
            for s in stages:
                s.terminate()
            for s in stages:
                try:
                    s.wait(60)
                except subprocess.TimeoutExpired:
                    s.kill()
            server.shutdown()
    print(f"{'rule':<8}{'delivered':>10}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
    for rule in ("early", "final"):
        latencies = [got[(rule, k)] - sent[k] for k in keys if (rule, k) in got]
        if not latencies:
            print(f"{rule:<8}{0:>6}/{len(keys):<3}")
            continue
        print(f"{rule:<8}{len(latencies):>6}/{len(keys):<3}{statistics.median(latencies):>9.2f}"
              f"{percentile(latencies, 0.99):>9.2f}{max(latencies):>9.2f}")
    print("early: judged on partial windows (for: 0s); final: the baseline, judged once the window is final")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
