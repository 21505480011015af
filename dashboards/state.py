"""The page state that lives in the URL query (so a view can be shared)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dashboards.data import TimeRange


PICK_FROM, PICK_TO = "from", "to"  # the interval picked on the topic chart


def query(search: str | None) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}


def to_search(values: dict[str, str | None]) -> str:
    kept = {k: v for k, v in values.items() if v}
    return "?" + urlencode(kept) if kept else ""


def time_range(search: str | None) -> TimeRange:
    q = query(search)
    return TimeRange.parse(q.get("range", "24h"), q.get("start"), q.get("end"))
