"""Sweep a grid of alert-rule thresholds over recorded news in one back-test, and print what a
risk team weighs: how early each crisis is caught and how many alerts the quiet weeks get.

Every combination becomes one rule (named by its settings) in one rules file, so one
``moodwire backtest`` run (the classified headlines cached in ``--out``) judges them all alike.

    python bench/sweep_rules.py ../shared/data/replay/svb_2023.csv --out var/sweep \\
        --watchlists config/watchlists.example.yaml \\
        --catch "watchlist:US regional banks" 2023-03-09 2023-03-14 \\
        --catch "watchlist:large European banks" 2023-03-14 2023-03-21 \\
        --quiet 2023-02-15 2023-03-06 [--windows 24h 6h] [--min-count 3 5 8] [--mean -0.3 -0.5] [--for 0s 2h] \\
        [--at-least 2 3 --score-below -0.6 -0.8]

Prints per rule: the first alert on each --catch key inside its interval (blank: missed), the
alerts of any key in the quiet interval (with the keys), and all alerts; best first (every
crisis caught, fewest quiet alerts, earliest). Adds the windows the grid needs to the back-test
(``--windows``), so the aggregator's configured windows need not hold them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def grid_rules(windows, counts, means, holds, at_least=(), score_below=()) -> tuple[str, list[str]]:
    """One rule per combination: ``mean_below`` over (window, min_count, mean, for), and
    ``negative_count`` over (window, at_least, score_below, for) when those are given."""
    names, lines = [], ["rules:"]
    for window, n, mean, hold in itertools.product(windows, counts, means, holds):
        name = f"w{window}-n{n}-m{abs(float(mean)):g}-f{hold}"
        names.append(name)
        lines += [f"  - name: {name}", "    watchlists: all", f"    window: {window}",
                  f"    when: {{mean_below: {mean}}}", f"    min_count: {n}", f"    for: {hold}",
                  f"    recover: {min(0.0, float(mean) + 0.15):g}", "    keep_firing_for: 12h"]
    for window, n, below, hold in itertools.product(windows, at_least, score_below, holds):
        name = f"w{window}-count{n}-below{abs(float(below)):g}-f{hold}"
        names.append(name)
        lines += [f"  - name: {name}", "    watchlists: all", f"    window: {window}",
                  f"    when: {{negative_count: {{at_least: {n}, score_below: {below}}}}}", f"    for: {hold}",
                  "    keep_firing_for: 12h"]
    return "\n".join(lines) + "\n", names


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("news")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--watchlists", default=str(ROOT / "config" / "watchlists.example.yaml"))
    p.add_argument("--catch", nargs=3, action="append", metavar=("KEY", "FROM", "TO"), default=[])
    p.add_argument("--quiet", nargs=2, metavar=("FROM", "TO"), required=True)
    p.add_argument("--windows", nargs="+", default=["24h", "6h"])
    p.add_argument("--min-count", nargs="+", type=int, default=[3, 5, 8])
    p.add_argument("--mean", nargs="+", default=["-0.3", "-0.4", "-0.5"])
    p.add_argument("--for", dest="holds", nargs="+", default=["0s", "1h", "2h"])
    p.add_argument("--at-least", nargs="*", type=int, default=[], help="negative_count rules: how many headlines")
    p.add_argument("--score-below", nargs="*", default=[], help="negative_count rules: below which score")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    text, names = grid_rules(args.windows, args.min_count, args.mean, args.holds, args.at_least, args.score_below)
    rules = args.out / "sweep-rules.yaml"
    rules.write_text(text, encoding="utf-8")
    windows = ",".join(f"{w}/{'1h' if w.endswith('h') and int(w[:-1]) >= 6 else '5m'}" for w in args.windows)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "moodwire_cli", "backtest", args.news, "--rules", str(rules),
                           "--watchlists", args.watchlists, "--windows", windows, "--out", str(args.out),
                           "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
        return done.returncode
    from moodwire.records import AlertEvent, decode
    from streams.backtest.report import episodes

    fired: dict[str, list] = defaultdict(list)  # rule → its episodes, earliest first
    for e in episodes([decode(AlertEvent, line) for line in (args.out / "alerts.jsonl").read_bytes().splitlines()]):
        fired[e.rule].append(e)
    quiet_from, quiet_to = when(args.quiet[0]), when(args.quiet[1])
    rows = []
    for name in names:
        alerts = fired[name]
        caught = [next((e.starts_at for e in alerts if e.key == key and when(start) <= e.starts_at < when(end)), None)
                  for key, start, end in args.catch]
        quiet = [e for e in alerts if quiet_from <= e.starts_at < quiet_to]
        rows.append((name, caught, quiet, len(alerts)))
    rows.sort(key=lambda r: (sum(c is None for c in r[1]), len(r[2]),
                             [c or datetime.max.replace(tzinfo=timezone.utc) for c in r[1]]))
    head = "rule".ljust(26) + "".join(k[-22:].ljust(24) for k, _, _ in args.catch) + "quiet  all  quiet keys"
    print(head)
    for name, caught, quiet, total in rows:
        cells = "".join((c.strftime("%m-%d %H:%M") if c else "missed").ljust(24) for c in caught)
        keys = ", ".join(f"{e.key} {e.starts_at:%m-%dT%H:%M}" for e in quiet)
        print(f"{name.ljust(26)}{cells}{len(quiet):<7}{total:<5}{keys}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
