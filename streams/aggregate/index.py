"""What the fold remembers about the table, to avoid reading it: which bucket keys each
partition holds, the first and last bucket start per key, when each bucket expires, and the
parsed form of each bucket. Rebuilt from the table after recovery (``Aggregator.adopt``);
never the source of truth."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from datetime import datetime

from streams.aggregate.keys import key_parts, parse_bucket_key
from streams.aggregate.windows import Bucket


class BucketIndex:
    def __init__(self) -> None:
        self.keys: dict[int, set[str]] = {}  # partition → bucket keys held for it
        self.held: set[str] = set()  # every partition's bucket keys (a miss costs no table lookup)
        self.topics: dict[int, dict[str, tuple[datetime, datetime]]] = {}  # partition → key → first, last start
        self.expiry: dict[int, list[tuple[datetime, str]]] = {}  # partition → heap of (bucket end, key)
        self.cache: dict[str, tuple[dict, Bucket]] = {}  # key → (stored value, its parsed bucket)
        self.starts: dict[tuple[int, str, int], set[int]] = {}  # (partition, key, step s) → bucket starts (s)

    def remember(self, partition: int, key: str) -> None:
        keys = self.keys.setdefault(partition, set())
        if key in keys:
            return
        keys.add(key)
        self.held.add(key)
        topic, step, start = parse_bucket_key(key)
        topic_s, step_s, start_s = key_parts(key)
        self.starts.setdefault((partition, topic_s, step_s), set()).add(start_s)
        topics = self.topics.setdefault(partition, {})
        first, last = topics.get(topic, (start, start))
        topics[topic] = (min(first, start), max(last, start))
        heapq.heappush(self.expiry.setdefault(partition, []), (start + step, key))

    def expire(self, partition: int, cutoff: datetime) -> dict[str, None]:
        """Forget the partition's buckets that end at or before ``cutoff``; returns them as
        deletions (key → None) for the table."""
        heap, keys = self.expiry.get(partition, []), self.keys.get(partition, set())
        gone = {}
        while heap and heap[0][0] <= cutoff:
            _, key = heapq.heappop(heap)
            if key in keys:
                keys.discard(key)
                self.held.discard(key)
                topic_s, step_s, start_s = key_parts(key)
                starts = self.starts.get((partition, topic_s, step_s))
                if starts is not None:
                    starts.discard(start_s)
                    if not starts:
                        del self.starts[(partition, topic_s, step_s)]
                gone[key] = None
                self.cache.pop(key, None)
        if gone and partition in self.topics:  # the first bucket per key moves on
            topics = self.topics[partition]
            for topic, (first, last) in list(topics.items()):
                if first < cutoff:
                    topics[topic] = (cutoff, max(last, cutoff))
        return gone

    def parsed(self, key: str, stored: dict, bucket: Bucket) -> None:
        """``bucket`` is ``stored`` parsed (the fold wrote it): read back without parsing."""
        self.cache[key] = (stored, bucket)

    def bucket(self, state: Mapping[str, dict], key: str) -> Bucket | None:
        """The parsed bucket, cached while the stored value is the same object. Keys no
        partition holds are not looked up (most of a long window's steps, and a table lookup
        that misses costs an exception)."""
        if key not in self.held:
            return None
        stored = state.get(key)
        if not stored:
            self.cache.pop(key, None)
            return None
        cached = self.cache.get(key)
        if cached is not None and cached[0] is stored:
            return cached[1]
        bucket = Bucket.from_dict(stored)
        self.cache[key] = (stored, bucket)
        return bucket
