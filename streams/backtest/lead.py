"""How early each alert came: its lead, the time from the first headline of its key that the
firing window holds to the firing. A risk team reads it as "how long the news was there before
we were told"; the back-test prints it per alert and the report shows it."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from moodwire.records import AlertEvent, ScoredNews, key_label
from moodwire.spans import format_time, parse_span
from streams.backtest.report import episodes


@dataclass(frozen=True)
class Lead:
    rule: str
    key: str
    fired_at: datetime
    lead: timedelta | None  # None: the window held no headline of the key (cannot happen live)
    first_at: datetime | None
    first_title: str

    def line(self) -> str:
        if self.lead is None:
            return f"alert {self.rule} on {key_label(self.key)} fired {format_time(self.fired_at)}"
        hours = self.lead.total_seconds() / 3600
        return (f"alert {self.rule} on {key_label(self.key)} fired {format_time(self.fired_at)}, {hours:.1f} h after "
                f"the first headline in its window ({format_time(self.first_at)} {self.first_title[:90]!r})")


def leads(alerts: Sequence[AlertEvent], records: Sequence[ScoredNews]) -> list[Lead]:
    """The lead of each alert episode (its first event), in firing order. ``records``: the
    news.scored records (an item per topic, and a copy per watchlist it matched)."""
    by_key: dict[str, list[ScoredNews]] = defaultdict(list)
    for r in records:
        by_key[r.key].append(r)
    for items in by_key.values():
        items.sort(key=lambda i: i.published_at)
    times = {k: [i.published_at for i in items] for k, items in by_key.items()}
    out = []
    for a in (e.first for e in episodes(alerts)):  # in firing order
        span = parse_span(a.window)
        at = bisect_left(times.get(a.topic, []), a.starts_at - span)
        items = by_key.get(a.topic, [])
        first = items[at] if at < len(items) and items[at].published_at <= a.starts_at else None
        out.append(Lead(a.rule, a.topic, a.starts_at, a.starts_at - first.published_at if first else None,
                        first.published_at if first else None, first.title if first else ""))
    return out


__all__ = ["Lead", "leads"]
