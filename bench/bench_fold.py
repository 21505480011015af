"""The aggregate's fold in one process, apart from Kafka and Faust: where a worker's CPU goes per
item. The bench's synthetic items (bench/synthetic.py: 20 topics, publish times spread over 48 h)
go through ``Aggregator.apply`` in micro-batches of 500 into a dict; per item it reports the fold
(``apply``, which builds the windows made final), the changelog's JSON, the windows an emitter
would send once a second at 10,000 items/s (every 20 batches) and their encoding. Best of three.
The windows 5m, 1h/5m and 24h/1h, counting the items below the score cutoffs in the 24h window
only (``--ladder``: as the shipped config/rules.feeds.yaml asks; ``--ladder ''`` for none, as a
worker without negative_count rules; code that predates the option counts none or all).

    python bench/bench_fold.py [--n 20000] [--ladder 24h] [--compare REF [--pairs 3]]

``--compare REF`` runs the same measurement on the code at git revision REF (a temporary
worktree, same interpreter) in alternating pairs and prints both and the per-pair ratio.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("apply", "changelog", "windows", "encode")


def measure(n: int, ladder: list[str]) -> dict[str, float]:
    """µs per item of each phase (best of three), run against the code in the current folder."""
    sys.path.insert(0, os.getcwd())
    from bench.synthetic import T0, TOPICS, scored
    from moodwire.runtime import tune_gc
    from moodwire.spans import parse_windows
    from streams.aggregate.fold import Aggregator
    from streams.aggregate.keys import marker_key

    tune_gc()
    rng = random.Random(1)
    items = [scored(t, T0 + timedelta(seconds=i * 48 * 3600 / n + rng.uniform(-60, 60)), rng, str(i))
             for i, t in ((i, rng.choice(TOPICS)) for i in range(n))]
    best = dict.fromkeys(PHASES, float("inf"))
    options = {"ladder": ladder} if "ladder" in inspect.signature(Aggregator).parameters else {}
    for _ in range(3):
        agg, state = Aggregator(parse_windows("5m,1h/5m,24h/1h"), timedelta(minutes=10), **options), {}
        spent = dict.fromkeys(PHASES, 0.0)
        pending, finals = set(), []
        for at in range(0, n, 500):
            started = time.perf_counter()
            result = agg.apply(state, 0, list(enumerate(items[at:at + 500], start=at)))
            spent["apply"] += time.perf_counter() - started
            started = time.perf_counter()
            for value in result.bucket_writes.values():
                if value is not None:
                    json.dumps(value, separators=(",", ":"))
            spent["changelog"] += time.perf_counter() - started
            for key, value in result.bucket_writes.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            state[marker_key(0)] = result.marker
            pending |= result.touched
            finals += result.windows
            if (at // 500) % 20 != 19 and at + 500 < n:
                continue
            runs: dict = {}
            for topic, name, start in sorted(pending):
                runs.setdefault((topic, name), []).append(start)
            pending, windows, finals = set(), finals, []
            watermark = agg.watermark(state, 0)
            started = time.perf_counter()
            for (topic, name), starts in runs.items():
                windows += agg.windows_of(state, topic, agg.spec(name), starts, watermark)
            spent["windows"] += time.perf_counter() - started
            started = time.perf_counter()
            for window in windows:
                window.encode()
            spent["encode"] += time.perf_counter() - started
        best = {k: min(best[k], spent[k] / n * 1e6) for k in PHASES}
    return best


def _line(label: str, figures: dict[str, float]) -> str:
    return f"{label:<22}" + "".join(f"{k} {figures[k]:6.1f}  " for k in PHASES) + f"total {sum(figures.values()):6.1f} µs/item"


def _run(cwd: Path, n: int, ladder: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--n", str(n), "--ladder", ladder, "--json"],
                         cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--compare", metavar="REF")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--ladder", default="24h",
                        help="comma-separated windows that count items below the score cutoffs ('' for none)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.json:
        print(json.dumps(measure(opts.n, [w for w in opts.ladder.split(",") if w])))
        return
    if not opts.compare:
        print(_line("here", _run(ROOT, opts.n, opts.ladder)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), opts.compare],
                       check=True, capture_output=True)
        try:
            ratios = []
            for _ in range(opts.pairs):
                here, there = _run(ROOT, opts.n, opts.ladder), _run(tree, opts.n, opts.ladder)
                print(_line("here", here))
                print(_line(f"@{opts.compare}", there))
                ratios.append(sum(there.values()) / sum(here.values()))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    print(f"per-pair ratio of CPU per item, {opts.compare} / here (above 1: here is faster): "
          f"{' / '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
