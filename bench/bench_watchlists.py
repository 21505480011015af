"""The classify stage with a 2,000-keyword watchlist file against the same stage without one.

1. matcher alone: µs per headline of ``Matcher.match`` over the recorded real headlines;
2. stage: ``--rounds`` rounds, each running one ``moodwire classify`` process without and one
   with the watchlist file (the order alternates round by round), each on its own embedded
   broker: after a warm-up batch, n items are pre-loaded into news.raw while the stage is paused
   (SIGSTOP), then items/s from the first scored output to the last. Reported: each round's
   ratio with / without and their median (this machine's speed drifts between minutes).

    python bench/bench_watchlists.py [--n 2000] [--rounds 3] [--keywords 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from bench.bench_classify import Tail, make_items  # noqa: E402
from moodwire.broker import embedded_broker  # noqa: E402
from moodwire.topics import NEWS_RAW  # noqa: E402
from moodwire.watchlists import Matcher, load_watchlists  # noqa: E402
from streams.ingest.replay import read_recorded  # noqa: E402

REAL = ROOT / "streams" / "samples" / "svb_2023_demo.csv"


def watchlist_file(path: Path, keywords: int) -> Path:
    """The example lists plus lists of invented company names, ``keywords`` keywords in all."""
    example = yaml.safe_load((ROOT / "config" / "watchlists.example.yaml").read_text())["watchlists"]
    have = sum(len(w.get("keywords", [])) for w in example)
    extra, n = [], 0
    while have + n < keywords:
        size = min(50, keywords - have - n)
        extra.append({"name": f"counterparties {len(extra) + 1}",
                      "keywords": [f"Counterparty {n + i} Holdings" for i in range(size)],
                      "tickers": [f"CP{len(extra)}X"]})
        n += size
    path.write_text(yaml.safe_dump({"watchlists": example + extra}), encoding="utf-8")
    return path


def matcher_cost(path: Path) -> dict:
    titles = [i.title for i in read_recorded(REAL).items]
    matcher = Matcher(load_watchlists(path))
    start = time.perf_counter()
    for _ in range(5):
        for t in titles:
            matcher.match(t)
    per = (time.perf_counter() - start) / (5 * len(titles))
    return {"headlines": len(titles), "us_per_headline": round(per * 1e6, 2),
            "matched_share": round(sum(bool(matcher.match(t)) for t in titles) / len(titles), 3)}


def stage_rate(n: int, tag: str, watchlists: Path | None) -> float:
    with embedded_broker(partitions=4) as broker:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOODWIRE_")},
               "MOODWIRE_KAFKA_BOOTSTRAP": broker.bootstrap, "MOODWIRE_MAX_BATCH": "64",
               "MOODWIRE_MAX_WAIT_MS": "20", "MOODWIRE_DEVICE": "cpu"}
        if watchlists:
            env["MOODWIRE_WATCHLISTS"] = str(watchlists)
        worker = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "classify"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
        tail = Tail(broker.bootstrap)
        tail.start()
        try:
            warm = make_items(64, f"warm{tag}")
            for item in warm:
                producer.send(NEWS_RAW, key=item.id.encode(), value=item.encode())
            producer.flush()
            tail.wait_for({i.id for i in warm}, 300)
            items = make_items(n, tag)
            worker.send_signal(signal.SIGSTOP)
            for item in items:
                producer.send(NEWS_RAW, key=item.id.encode(), value=item.encode())
            producer.flush()
            worker.send_signal(signal.SIGCONT)
            ids = {i.id for i in items}
            done = tail.wait_for(ids, 600)
            first = min(tail.arrived[i] for i in ids)
            return (n - 1) / max(done - first, 1e-9)
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(60)
            tail.stop.set()
            producer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keywords", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = watchlist_file(Path(tmp) / "watchlists.yaml", args.keywords)
        lists = load_watchlists(path)
        cost = matcher_cost(path)
        without, with_lists = [], []
        for r in range(args.rounds):
            order = [(None, without), (path, with_lists)]
            for file, rates in (order if r % 2 == 0 else order[::-1]):
                rates.append(stage_rate(args.n, f"{r}{'w' if file else 'n'}", file))
        ratios = [w / n for w, n in zip(with_lists, without)]
    results = {"watchlists": len(lists), "keywords": sum(len(w.keywords) for w in lists), "matcher": cost,
               "n": args.n, "rounds": args.rounds,
               "stage_items_per_s_without": [round(x, 1) for x in without],
               "stage_items_per_s_with": [round(x, 1) for x in with_lists],
               "with_vs_without_runs": [round(x, 3) for x in ratios],
               "with_vs_without": round(float(np.median(ratios)), 3)}
    for k, v in results.items():
        print(f"{k:32s} {v}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
