"""Which items each partition has taken, per window key: every item counts once.

Duplicates are ordinary (at-least-once delivery upstream, a feed re-publishing an item, two
ingest replicas, a replay run twice), so the fold remembers each (window key, item id) it took,
with the source offset that brought it and what became of it (counted, late or future). A
record whose (key, id) is already remembered under another offset is a duplicate: it changes
nothing and is only counted (``BatchResult.duplicates``). The record that was remembered, read
again after a crash (the same offset), is not a duplicate: it is folded again, and the
buckets' offsets keep it from being counted twice (invariant I1).

Table entries, in the aggregate's table and written in the same step as the buckets (I5):
``~seen/{partition}/{slot start s}`` → ``{"partition": p, "ids": {dedup key: disposition}}``,
one per ``SLOT_S`` of event time. An id goes in the slot of its publish time, or of the
partition's watermark when that is later (a late or future item), so every id is remembered
for at least the longest window plus the retention after the watermark passed it — the same
horizon as the buckets — and then forgotten with its slot. The dedup key is the window key and
a 64-bit BLAKE2b digest of the id (collisions: about one in 10^7 at a million ids per key).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Mapping

SEEN_PREFIX = "~seen/"
COUNTED, LATE, FUTURE = "counted", "late", "future"


def seen_key(partition: int, slot_s: int) -> str:
    return f"{SEEN_PREFIX}{partition}/{slot_s}"


def slot_of(key: str) -> int:
    """The slot start (s) of a ``seen_key``."""
    return int(key.rsplit("/", 1)[1])


def dedup_key(key: str, item_id: str) -> str:
    return f"{key}\x1f{hashlib.blake2b(item_id.encode(), digest_size=8).hexdigest()}"


def _encode(offset: int, disposition: str):
    return offset if disposition == COUNTED else [offset, disposition]


def _decode(value) -> tuple[int, str]:
    return (value, COUNTED) if isinstance(value, int) else (value[0], value[1])


class SeenIds:
    """The in-memory index of the ``~seen/`` entries (rebuilt from the table after recovery)."""

    def __init__(self, slot_s: int) -> None:
        self.slot_s = slot_s
        self.ids: dict[int, dict[str, tuple[int, int]]] = {}  # partition → dedup key → (offset, slot)
        self.slots: dict[int, dict[int, dict]] = {}  # partition → slot start → {dedup key: encoded}
        self.expiry: dict[int, list[int]] = {}  # partition → heap of slot starts

    def __len__(self) -> int:
        return sum(map(len, self.ids.values()))

    def lookup(self, partition: int, dkey: str) -> tuple[int, str] | None:
        """(offset, disposition) of the record that brought ``dkey``, or None."""
        found = self.ids.get(partition, {}).get(dkey)
        if found is None:
            return None
        offset, slot = found
        return _decode(self.slots[partition][slot][dkey])

    def remember(self, partition: int, dkey: str, offset: int, disposition: str, at_s: float) -> int:
        """Remember ``dkey``; returns the slot it went to (its table entry must be written)."""
        slot = int(at_s // self.slot_s) * self.slot_s
        slots = self.slots.setdefault(partition, {})
        if slot not in slots:
            slots[slot] = {}
            heapq.heappush(self.expiry.setdefault(partition, []), slot)
        slots[slot][dkey] = _encode(offset, disposition)
        self.ids.setdefault(partition, {})[dkey] = (offset, slot)
        return slot

    def forget(self, partition: int, dkey: str, offset: int) -> None:
        """Forget ``dkey`` if the record at ``offset`` brought it: that record was not folded
        (``streams.aggregate.isolate``), and the same item sent again must count."""
        found = self.ids.get(partition, {}).get(dkey)
        if found is not None and found[0] == offset:
            del self.ids[partition][dkey]
            self.slots[partition][found[1]].pop(dkey, None)

    def entry(self, partition: int, slot: int) -> dict:
        """The table value of a slot (a copy: queued writes must not change under the producer)."""
        return {"partition": partition, "ids": dict(self.slots[partition][slot])}

    def adopt(self, partition: int, key: str, value: Mapping) -> None:
        slot = slot_of(key)
        ids, slots = self.ids.setdefault(partition, {}), self.slots.setdefault(partition, {})
        if slot not in slots:
            heapq.heappush(self.expiry.setdefault(partition, []), slot)
        slots[slot] = dict(value["ids"])
        for dkey in value["ids"]:
            ids[dkey] = (_decode(value["ids"][dkey])[0], slot)

    def expire(self, partition: int, cutoff_s: float) -> dict[str, None]:
        """Forget the slots that end at or before ``cutoff_s``; returns them as table deletions."""
        heap, slots, ids = self.expiry.get(partition, []), self.slots.get(partition, {}), self.ids.get(partition, {})
        gone = {}
        while heap and heap[0] + self.slot_s <= cutoff_s:
            slot = heapq.heappop(heap)
            for dkey in slots.pop(slot, {}):
                if ids.get(dkey, (None, None))[1] == slot:
                    del ids[dkey]
            gone[seen_key(partition, slot)] = None
        return gone


def is_seen_key(key: str) -> bool:
    return key.startswith(SEEN_PREFIX)
