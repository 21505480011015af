"""``moodwire replay FILE``: publish recorded news (JSONL or CSV) at a rate or time-compressed.

Each row needs ``title`` and ``published_at`` (ISO 8601; a date without a time of day is read
as noon UTC and counted); ``url``, ``source``, ``body``, ``lang`` are optional. Rows are sent in publish-time order. ``--rate N`` sends N items per second;
``--speedup X`` keeps the recorded gaps divided by X; neither sends as fast as possible.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from moodwire.records import NewsItem
from moodwire.topics import NEWS_RAW
from moodwire.errors import ReplayError
from streams.ingest.normalize import make_item, parse_time


@dataclass(frozen=True)
class ReplayPlan:
    items: list[NewsItem]
    skipped: list[str]  # "file:line: reason" for rows that could not become items
    date_only: int = 0  # rows whose published_at was a date without a time of day (read as 12:00 UTC)
    rows: int = 0       # rows read
    shift: timedelta = timedelta(0)  # how far ``shift_to`` moved every publish time (whole days)


_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def read_recorded(path: str | Path, shift_to: datetime | None = None) -> ReplayPlan:
    """Rows of a JSONL or CSV file as NewsItems sorted by publish time.

    ``shift_to`` moves every publish time by whole days so that the newest lands in the day up
    to it (for demos that should look live): the order, the gaps and the time of day are
    unchanged, so hour- and day-aligned windows hold the same items whenever a replay starts.
    """
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"replay file {path} does not exist")
    rows = list(_rows(path))
    if not rows:
        raise ReplayError(f"replay file {path} has no rows")
    fetched_at = datetime.now(timezone.utc)
    items, skipped, date_only = [], [], 0
    for where, row in rows:
        if not isinstance(row, dict):
            skipped.append(f"{where}: {row if isinstance(row, str) else 'not an object'}")
            continue
        raw_time = row.get("published_at")
        if isinstance(raw_time, str) and _DATE_ONLY.match(raw_time):
            raw_time = f"{raw_time.strip()}T12:00:00+00:00"  # a day without a time of day: its noon, UTC
            date_only += 1
        published = parse_time(raw_time)
        if published is None:
            skipped.append(f"{where}: published_at missing or not a time ({row.get('published_at')!r})")
            continue
        try:
            item = make_item(source=str(row.get("source") or path.stem), title=str(row.get("title") or ""),
                             url=row.get("url") or None, body=row.get("body") or None, published=published,
                             fetched_at=fetched_at, lang=row.get("lang"))
        except ValueError as exc:
            skipped.append(f"{where}: {exc}")
            continue
        if item is None:
            skipped.append(f"{where}: empty title")
            continue
        items.append(item)
    if not items:
        raise ReplayError(f"replay file {path}: no usable rows; first problems: {'; '.join(skipped[:3])}")
    items.sort(key=lambda i: i.published_at)
    delta = timedelta(0)
    if shift_to is not None:
        delta = timedelta(days=(shift_to - items[-1].published_at) // timedelta(days=1))
        items = [i.model_copy(update={"published_at": i.published_at + delta}) for i in items]
    return ReplayPlan(items, skipped, date_only, len(rows), delta)


def _rows(path: Path) -> Iterator[tuple[str, object]]:
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            if suffix in (".jsonl", ".ndjson"):
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            yield f"{path.name}:{lineno}", json.loads(line)
                        except json.JSONDecodeError as exc:
                            yield f"{path.name}:{lineno}", f"not JSON ({exc.msg})"
            elif suffix == ".csv":
                reader = csv.DictReader(fh)
                if not reader.fieldnames or not {"title", "published_at"} <= set(reader.fieldnames):
                    raise ReplayError(f"replay file {path} needs 'title' and 'published_at' columns "
                                      f"(has: {', '.join(reader.fieldnames or [])})")
                for lineno, row in enumerate(reader, 2):
                    yield f"{path.name}:{lineno}", row
            else:
                raise ReplayError(f"replay file {path}: unsupported type {suffix!r}; use .jsonl or .csv")
    except UnicodeDecodeError as exc:
        raise ReplayError(f"replay file {path} is not UTF-8 ({exc.reason})") from None


def schedule(items: list[NewsItem], rate: float | None, speedup: float | None) -> list[float]:
    """Send offsets in seconds from the start for each item."""
    if rate and speedup:
        raise ReplayError("give --rate or --speedup, not both")
    if rate is not None and rate <= 0 or speedup is not None and speedup <= 0:
        raise ReplayError("--rate and --speedup must be positive")
    if rate:
        return [i / rate for i in range(len(items))]
    if speedup:
        first = items[0].published_at
        return [(i.published_at - first).total_seconds() / speedup for i in items]
    return [0.0] * len(items)


def replay(items: list[NewsItem], send: Callable[[list[NewsItem]], None], offsets: list[float],
           progress: Callable[[int], None] | None = None, max_batch: int = 500,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> int:
    """Send items at their offsets, batching those already due; returns the number sent."""
    start = clock()
    sent = 0
    while sent < len(items):
        wait = offsets[sent] - (clock() - start)
        if wait > 0:
            sleep(min(wait, 1.0))
            continue
        elapsed = clock() - start
        end = sent
        while end < len(items) and end - sent < max_batch and offsets[end] <= elapsed:
            end += 1
        send(items[sent:end])
        if progress:
            progress(end - sent)
        sent = end
    return sent


def publish_replay(publisher, items: list[NewsItem]) -> None:
    publisher.publish(NEWS_RAW, [(i.id.encode(), i) for i in items])


__all__ = ["read_recorded", "schedule", "replay", "publish_replay", "ReplayPlan"]
