"""What a ``news.scored`` partition knows of the ``news.raw`` partitions upstream (invariant I8
of docs/aggregate-worker.md), and the watermark it gives: the minimum over those still behind,
as Flink takes the minimum over an operator's inputs. Pure; the fold keeps it in the marker."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from moodwire.records import ScoredNews


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class Inputs:
    """The ``news.raw`` partitions a ``news.scored`` partition has heard of (I8), as its marker
    keeps them: ``{partition: [newest publish time, behind]}``. Of two views of one partition the
    one with the newer time wins, and on a tie the later record."""

    def __init__(self, held: Mapping | None) -> None:
        self.held: dict[str, list] = dict(held or {})
        self._last = None  # the last record's inputs: a classify batch's records share one view

    def see(self, item: ScoredNews) -> None:
        if not item.inputs or item.inputs == self._last:
            return
        self._last = item.inputs
        for partition, progress in item.inputs.items():
            at, key = progress.time, str(partition)
            known = self.held.get(key)
            if known is None or known[0] is None or (at is not None and at >= _time(known[0])):
                self.held[key] = [None if at is None else at.isoformat(), progress.behind]

    def watermark(self, max_event: datetime | None, lateness: timedelta) -> datetime | None:
        """The minimum over the inputs still behind, and the newest time counted here, minus
        the lateness; None while an input behind has no time yet (nothing may close)."""
        if max_event is None:
            return None
        low = max_event
        for at, behind in self.held.values():
            if behind:
                if at is None:
                    return None
                low = min(low, _time(at))
        return low - lateness


__all__ = ["Inputs"]
