"""Aggregation throughput: ``moodwire aggregate`` vs. naive per-item Faust windowed tables and
vs. a worker that only decodes (once as a plain Faust ``take_events`` agent, the ceiling of an
ordinary Faust worker; once on Moodwire's consumer with whole-batch delivery, as ``moodwire
aggregate`` gets its records: the ceiling of Moodwire's worker), same items, same embedded
broker, same run.

The items (scored news over 20 topics, publish times spread evenly over ``--hours``; the naive
run gets the same density) are pre-loaded into
news.scored; each worker process then runs until its ``moodwire_aggregate_items`` counter
(Prometheus) reaches the item count. Throughput is counted from the first poll that sees
items processed to the last item, so start-up and the group join are reported apart; with it,
the worker process's CPU time per item over the same span (all threads; steadier than the rate
when other load on the machine comes and goes).

    python bench/bench_aggregate.py [--n 50000] [--naive-n 10000] [--rounds 3] [--sink]
    python bench/bench_aggregate.py --compare REF [--rounds 3]

``--compare REF`` is an A/B of ``moodwire aggregate`` against the code at git revision REF (checked
out into a temporary worktree, same interpreter and packages), run in alternating pairs; it
prints both medians and the median of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402

from moodwire.broker import embedded_broker, free_port  # noqa: E402
from moodwire.topics import NEWS_SCORED  # noqa: E402
from bench.synthetic import T0, TOPICS, scored  # noqa: E402


def load(bootstrap: str, n: int, hours: float) -> float:
    rng = random.Random(1)
    span_s = hours * 3600
    payloads = [(t.encode(), scored(t, T0 + timedelta(seconds=i * span_s / n + rng.uniform(-60, 60)), rng,
                                  str(i)).encode()) for i, t in ((i, rng.choice(TOPICS)) for i in range(n))]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    started = time.perf_counter()
    for key, value in payloads:
        producer.send(NEWS_SCORED, key=key, value=value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def counter(port: int) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    match = re.search(r"^moodwire_aggregate_items_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, args: list[str], env: dict, port: int, n: int, limit_s: float, cwd: Path = ROOT) -> dict:
    """Items/s from the first processed item to the last, and the worker's CPU time per item
    over the same span (all its threads): the CPU figure holds better than the rate when the
    machine's other load comes and goes."""
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    first = last = None
    seen = 0.0
    cpu_first = cpu_last = 0.0
    try:
        while time.perf_counter() - started < limit_s:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}; see {log}")
            value = counter(port)
            now = time.perf_counter()
            if value:
                if first is None:
                    first, cpu_first, first_value = now, cpu_seconds(process.pid), value
                seen = value
                if value >= n:
                    last, cpu_last = now, cpu_seconds(process.pid)
                    break
            # 5 polls a second: each scrape renders the worker's whole registry in its process
            # (moodwire aggregate's is larger than the no-op apps' single counter), so polling
            # at 20/s taxed the worker measured; 0.2 s at each end is ~1 % of a 15 s run.
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    if last is None:
        rate = seen / (time.perf_counter() - first) if first else 0.0
        return {"name": name, "items": seen, "rate": rate, "complete": False, "startup_s": (first or 0) - started}
    # counted from the first poll that saw items: those it saw already are left out of the rate too
    return {"name": name, "items": n, "rate": (n - first_value) / max(1e-9, last - first), "complete": True,
            "startup_s": first - started, "cpu_us": (cpu_last - cpu_first) * 1e6 / max(1.0, n - first_value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--naive-n", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=24.0,
                        help="publish times spread over this many hours (event-time density drives the work)")
    parser.add_argument("--sink", action="store_true", help="also write items and windows to a SQLite store")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the Faust workers this many times, interleaved (this machine's speed drifts "
                             "between runs); medians are reported, the naive baseline runs once")
    parser.add_argument("--compare", metavar="REF", default=None,
                        help="A/B: moodwire aggregate here vs. at git revision REF, in alternating pairs")
    opts = parser.parse_args()
    if opts.compare:
        compare(opts)
        return
    workers = [("moodwire aggregate", opts.n), ("no-op plain faust agent", opts.n),
               ("no-op, moodwire batch delivery", opts.n)]
    rates: dict[str, list[float]] = {name: [] for name, _ in workers}
    cpu: dict[str, list[float]] = {name: [] for name, _ in workers}
    with tempfile.TemporaryDirectory() as home:
        naive = run_one(("naive per-item windowed tables", opts.naive_n), opts, home)
        for _ in range(opts.rounds):
            for worker in workers:
                result = run_one(worker, opts, home)
                rates[worker[0]].append(result["rate"])
                cpu[worker[0]].append(result.get("cpu_us", float("nan")))
    ours, ceiling, own = (statistics.median(rates[name]) for name, _ in workers)
    print("median CPU per item (worker process, all threads): "
          + ", ".join(f"{name} {statistics.median(cpu[name]):.0f} µs" for name, _ in workers))
    share = statistics.median(a / b for a, b in zip(rates["moodwire aggregate"], rates["no-op, moodwire batch delivery"]))
    print(f"medians over {opts.rounds} round(s): moodwire aggregate {ours:.0f}, no-op Faust {ceiling:.0f}, "
          f"no-op on Moodwire's batch delivery {own:.0f} items/s")
    print(f"speed-up over naive per-item updates: {ours / naive['rate']:.1f}x; "
          f"vs the no-op plain Faust agent: {ours / ceiling:.2f}x "
          f"(of the no-op on Moodwire's batch delivery, per round: {share:.2f}); "
          f"goal 5,000 items/s: {'met' if ours >= 5000 else 'missed'} ({ours:.0f})")


def compare(opts) -> None:
    """``moodwire aggregate`` here (A) and at ``opts.compare`` (B), in alternating pairs."""
    with tempfile.TemporaryDirectory() as home:
        tree = Path(home) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), opts.compare],
                       check=True, capture_output=True)
        try:
            here, there = [], []
            for i in range(opts.rounds):
                pair = [("moodwire aggregate", None), (f"moodwire aggregate @{opts.compare}", tree)]
                for name, code in (pair if i % 2 == 0 else pair[::-1]):  # who goes first alternates
                    result = run_one((name, opts.n), opts, home, code)
                    (here if code is None else there).append(result)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    a, b = (statistics.median(r["rate"] for r in runs) for runs in (here, there))
    ratio = statistics.median(x["rate"] / y["rate"] for x, y in zip(here, there))
    cpu = [statistics.median(r.get("cpu_us", float("nan")) for r in runs) for runs in (here, there)]
    print(f"medians over {opts.rounds} pair(s): here {a:.0f} items/s ({cpu[0]:.0f} µs CPU/item), "
          f"{opts.compare} {b:.0f} items/s ({cpu[1]:.0f} µs CPU/item); per-pair ratio here/{opts.compare}: "
          f"{ratio:.2f} (goal: 0.95 or more, {'met' if ratio >= 0.95 else 'missed'}); CPU per item here/"
          f"{opts.compare}: {cpu[0] / cpu[1]:.2f}")


def run_one(worker: tuple[str, int], opts, root: str, code: Path | None = None) -> dict:
    """One worker over freshly loaded news.scored; ``code``: run ``moodwire aggregate`` from that
    checkout instead of this one."""
    name, n = worker
    home = tempfile.mkdtemp(dir=root)  # each run its own store and Faust data
    with embedded_broker(partitions=4) as broker:
        load_s = load(broker.bootstrap, n, opts.hours * n / opts.n)
        port = free_port()
        env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": broker.bootstrap, "MOODWIRE_HOME": home,
               "MOODWIRE_METRICS_PORT": str(port), "MOODWIRE_LOG_LEVEL": "WARNING",
               "MOODWIRE_AGGREGATE_IDLE_CLOCK": "false"}
        if name.startswith("moodwire"):
            tree = code or ROOT
            module = "moodwire_cli" if (tree / "moodwire_cli" / "__main__.py").exists() else "moodwire.cli"
            env["PYTHONPATH"] = str(tree)
            args = [sys.executable, "-m", module, "aggregate", "--sink" if opts.sink else "--no-sink",
                    "--datadir", f"{home}/agg"]
        else:
            mode = ("naive" if name.startswith("naive") else
                    "noop-moodwire" if name.endswith("batch delivery") else "noop")
            args = [sys.executable, str(ROOT / "bench" / "naive_windows_app.py"), mode, broker.bootstrap,
                    f"{home}/{mode}", str(port)]
        result = measure(name, args, env, port, n, limit_s=600, cwd=code or ROOT)
    print(f"{name:32s} {result['items']:>8.0f} items  {result['rate']:8.0f} items/s"
          f"  {result.get('cpu_us', float('nan')):5.0f} µs CPU/item  (start-up {result['startup_s']:.1f} s; loading news.scored took {load_s:.1f} s)"
          + ("" if result["complete"] else "  INCOMPLETE"), flush=True)
    return result


if __name__ == "__main__":
    main()
