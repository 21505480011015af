"""Memory of the aggregate's seen ids (each item counts once): bytes per remembered (key, id) in
the worker's index and in the changelog's values, for a million ids over 48 h of event time.

    python bench/bench_dedup.py [--n 1000000] [--keys 20]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.aggregate.seen import COUNTED, SeenIds, dedup_key  # noqa: E402
from moodwire.records import item_id  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=20)
    opts = parser.parse_args()
    keys = [f"topic {k}" for k in range(opts.keys)]
    ids = [item_id(None, "bench", f"headline {i}") for i in range(opts.n)]
    span_s = 48 * 3600
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    seen = SeenIds(300)
    for i, one in enumerate(ids):  # as the fold does: the digest made, looked up, remembered
        dkey = dedup_key(keys[i % opts.keys], one)
        if seen.lookup(0, dkey) is None:
            seen.remember(0, dkey, i, COUNTED, 1_700_000_000 + i * span_s / opts.n)
    elapsed = time.perf_counter() - started
    current = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    entries = sum(len(json.dumps(seen.entry(0, slot)).encode()) for slot in seen.slots[0])
    per_million = 1_000_000 / opts.n
    print(f"{opts.n:,} ids over {opts.keys} keys and 48 h: worker index {current * per_million / 2**20:.0f} MiB "
          f"per million ids ({current / opts.n:.0f} bytes each, the dedup key strings included); changelog values "
          f"{entries * per_million / 2**20:.0f} MiB per million ({entries / opts.n:.0f} bytes each); "
          f"{opts.n / elapsed:,.0f} ids remembered per second")


if __name__ == "__main__":
    main()
