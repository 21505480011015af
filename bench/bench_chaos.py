"""Chaos run: the recorded demo news with repeats, late, future-dated, undecodable and NUL-bearing
records, replayed into classify and aggregate while they are SIGKILLed at random moments, with
classify down for a while, at the shipped lateness (``bench/chaos.py`` says what is checked).
Prints items in, windows, dead letters by reason, kills, what was lost or doubled, and the
aggregate's peak memory, per broker.

    python bench/bench_chaos.py [--broker embedded|kafka|both] [--kills 12] [--rate 12] [--n N] [--outage 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaos import LATENESS, run  # noqa: E402
from moodwire.broker import embedded_broker, free_port  # noqa: E402
from moodwire.topics import create_topics  # noqa: E402


class ApacheKafka:
    """``scripts/kafka-local`` on a port and data folder of its own; ``restart`` stops it and
    starts it again on both after ``down_s`` (the topics and offsets are on disk)."""

    def __init__(self, data: Path, down_s: float = 8.0) -> None:
        self.data, self.port, self.down_s, self.process = data, free_port(), down_s, None
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self, create: bool = True) -> None:
        self.process = subprocess.Popen([str(ROOT / "scripts" / "kafka-local"), "run", "--port", str(self.port),
                                         "--data", str(self.data)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        for line in self.process.stdout:
            if line.startswith("READY"):
                threading.Thread(target=self.process.stdout.read, daemon=True).start()  # keep the pipe drained
                if create:
                    create_topics(self.bootstrap, 4, 1)
                return
        raise SystemExit("Apache Kafka did not start (scripts/kafka-local fetch first)")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)

    def restart(self) -> None:
        print(f"  restarting Apache Kafka ({self.down_s:g} s down)", flush=True)
        self.stop()
        time.sleep(self.down_s)
        self.start(create=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["embedded", "kafka", "both"], default="both")
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--rate", type=float, default=12.0, help="records per second into news.raw")
    parser.add_argument("--n", type=int, default=None, help="news items of the demo file (default: all)")
    parser.add_argument("--lateness-min", type=int, default=int(LATENESS.total_seconds() // 60),
                        help="the aggregate's allowed lateness (default: the shipped setting)")
    parser.add_argument("--outage", type=float, default=20.0,
                        help="seconds classify is down from a third of the way in (at 12 records/s: days of news)")
    parser.add_argument("--no-broker-restart", dest="broker_restart", action="store_false",
                        help="do not restart Apache Kafka two thirds of the way in (the embedded broker keeps "
                             "nothing across a restart: it is never restarted)")
    opts = parser.parse_args()
    for broker in (("embedded", "kafka") if opts.broker == "both" else (opts.broker,)):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"--- {broker}: {opts.kills} kills, {opts.rate} records/s, lateness {opts.lateness_min} min, "
                  f"classify down {opts.outage:g} s"
                  + (", the broker restarted" if broker == "kafka" and opts.broker_restart else ""), flush=True)
            if broker == "embedded":
                with embedded_broker(partitions=4) as b:
                    report = run(b.bootstrap, Path(tmp), opts.kills, n=opts.n, rate=opts.rate,
                                 lateness=timedelta(minutes=opts.lateness_min), outage=opts.outage)
            else:
                kafka = ApacheKafka(Path(tmp) / "kafka")
                kafka.start()
                try:
                    report = run(kafka.bootstrap, Path(tmp), opts.kills, n=opts.n, rate=opts.rate,
                                 lateness=timedelta(minutes=opts.lateness_min), outage=opts.outage,
                                 restart_broker=kafka.restart if opts.broker_restart else None)
                finally:
                    kafka.stop()
            verdict = "PASS" if report.lost == report.double == report.lost_in_classify == report.wrong_dead \
                == report.uninjected_dead == report.unmatched_stamps == 0 else "FAIL"
            print(f"{broker}: {verdict} (goal: 0 lost, 0 double, dead letters only of the injected faults, "
                  "aggregate peak RSS <= 500 MB)", flush=True)
            time.sleep(1)


if __name__ == "__main__":
    main()
