"""Recorded news for a back-test: read, filtered by time, classified, cached.

Classification is ``moodwire classify``'s: the titles through the inference engine in batches,
scored by ``streams.classify.worker.score_items``. The scored items are cached in the output folder
(``scored.jsonl`` with ``scored.meta.json`` naming the model and a digest of its weights), so a
second back-test of other rules on the same news skips the model; items missing from the cache
(another file, a wider time range) are classified and added.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from moodwire.errors import RecordError
from moodwire.records import NewsItem, ScoredNews, decode
from streams.classify.worker import score_items

CACHE, CACHE_META = "scored.jsonl", "scored.meta.json"


def within(items: list[NewsItem], start: datetime | None, end: datetime | None) -> list[NewsItem]:
    """Items published in [start, end)."""
    return [i for i in items if (start is None or i.published_at >= start) and (end is None or i.published_at < end)]


def model_identity(engine) -> dict:
    weights = sorted(p for p in Path(engine.model_dir).rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json", ".onnx"))
    digest = hashlib.sha256()
    for path in weights:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return {"model": engine.label, "digest": digest.hexdigest()[:16], "int8": getattr(engine, "int8", None),
            "runtime": getattr(engine, "runtime", None)}


def _key(item: NewsItem) -> str:
    return f"{item.id}\x1f{item.title}"


def _read_cache(out: Path, identity: dict) -> dict[str, ScoredNews]:
    meta, cache = out / CACHE_META, out / CACHE
    if not meta.is_file() or not cache.is_file():
        return {}
    try:
        if json.loads(meta.read_text(encoding="utf-8")) != identity:
            return {}
        cached = {}
        for line in cache.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = decode(ScoredNews, line)
                cached[_key(item)] = item
        return cached
    except (json.JSONDecodeError, RecordError, UnicodeDecodeError):
        return {}  # a damaged cache is rebuilt, not trusted


def classify_items(items: list[NewsItem], engine, out: Path, batch: int = 256,
                   say: Callable[[str], None] = print, progress: bool = True) -> list[ScoredNews]:
    """Every item scored, in the given order; cached in ``out``."""
    identity = model_identity(engine)
    cached = _read_cache(out, identity)
    todo = [i for i in items if _key(i) not in cached]
    if todo:
        from tqdm.auto import tqdm

        started = time.monotonic()
        bar = tqdm(total=len(todo), desc=f"classifying with {engine.label}", unit="headline",
                   disable=not progress, file=sys.stderr, mininterval=1)
        for offset in range(0, len(todo), batch):
            chunk = todo[offset:offset + batch]
            for item in score_items(chunk, engine.classify([i.title for i in chunk]), engine.label):
                cached[_key(item)] = item
            bar.update(len(chunk))
        bar.close()
        took = time.monotonic() - started
        say(f"classified {len(todo)} headlines in {took:.1f} s ({len(todo) / max(took, 1e-9):.0f}/s); "
            f"cached in {out / CACHE}")
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (CACHE + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for item in sorted(cached.values(), key=lambda s: (s.published_at, s.id)):
                fh.write(item.model_dump_json() + "\n")
        tmp.replace(out / CACHE)
        (out / CACHE_META).write_text(json.dumps(identity) + "\n", encoding="utf-8")
    else:
        say(f"{len(items)} headlines taken from the cache {out / CACHE} (model {identity['model']})")
    return [cached[_key(i)] for i in items]
