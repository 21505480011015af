"""The page state that lives in the URL query (so a view can be shared)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dashboards.data import TimeRange, custom_problem


PICK_FROM, PICK_TO = "from", "to"  # the interval picked on the topic chart


def query(search: str | None) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}


def to_search(values: dict[str, str | None]) -> str:
    kept = {k: v for k, v in values.items() if v}
    return "?" + urlencode(kept) if kept else ""


def range_problem(search: str | None) -> str:
    """What is wrong with the URL's custom range ("" when nothing): the page then shows the
    last 24 hours, and says so under the inputs."""
    q = query(search)
    problem = custom_problem(q.get("start"), q.get("end")) if q.get("range") == "custom" else None
    return f"Custom range: {problem}. Showing the last 24 h." if problem else ""


def time_range(search: str | None) -> TimeRange:
    q = query(search)
    return TimeRange.parse(q.get("range", "24h"), q.get("start"), q.get("end"))
