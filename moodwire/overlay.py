"""``Overlay``: a key/value state as it will be once a set of writes lands. The aggregate worker
reads its table this way while the changelog acknowledges (``streams.faustx.state.StateView``),
and the fold reads a batch's own writes this way before they are made (``streams.aggregate.fold``)."""

from __future__ import annotations

from collections.abc import Mapping

_MISSING = object()


class Overlay(Mapping):
    """``base`` with ``writes`` on top: a key written reads its written value, ``None`` meaning
    deleted; every other key reads ``base``. Neither is copied: later writes show at once."""

    def __init__(self, base: Mapping, writes: Mapping) -> None:
        self._base, self.writes = base, writes

    @property
    def base(self) -> Mapping:
        return self._base

    def __getitem__(self, key):
        value = self.writes.get(key, _MISSING)
        if value is _MISSING:
            return self.base[key]
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key, default=None):
        value = self.writes.get(key, _MISSING)
        if value is _MISSING:
            return self.base.get(key, default)
        return default if value is None else value

    def __contains__(self, key) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __iter__(self):
        return (key for key, _ in self.items())

    def items(self):
        """(key, value) pairs, ``base`` read in one pass (a rocksdb lookup per key would search
        every partition's database outside an event)."""
        writes = self.writes
        for key, value in self.base.items():
            if key not in writes:
                yield key, value
        for key, value in list(writes.items()):
            if value is not None:
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self.items())
