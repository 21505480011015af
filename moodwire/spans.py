"""Durations and window shapes as written in settings: '30s', '5m', '1h', '7d', '1h/5m'."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


def parse_span(text: str) -> timedelta:
    """'90s', '5m', '1h', '24h', '7d' → timedelta; ValueError naming the text otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h or 7d")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


def parse_span_or_zero(text: str) -> timedelta:
    """Like ``parse_span`` but also '0s' (or 0m, 0h, 0d): holds where zero means "at once"."""
    text = str(text).strip()
    if text[:-1] == "0" and text[-1:] in ("s", "m", "h", "d"):
        return timedelta(0)
    return parse_span(text)


def parse_duration(text: str) -> timedelta:
    """Like ``parse_span_or_zero`` but also milliseconds ('200ms'): waits and timeouts."""
    text = str(text).strip()
    if text.endswith("ms") and text[:-2].isdigit():
        return timedelta(milliseconds=int(text[:-2]))
    try:
        return parse_span_or_zero(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration like 0s, 200ms, 30s, 5m, 1h or 7d") from None


@dataclass(frozen=True)
class WindowSpec:
    """A window of ``span`` that starts every ``step`` (tumbling when they are equal)."""

    span: timedelta
    step: timedelta
    name: str

    @classmethod
    def parse(cls, text: str) -> "WindowSpec":
        span_text, _, step_text = text.strip().partition("/")
        span = parse_span(span_text)
        step = parse_span(step_text) if step_text else span
        if step > span or span % step:
            raise ValueError(f"window {text.strip()!r}: the step {step_text} must divide the span {span_text}")
        return cls(span, step, span_text)

    def starts_covering(self, bucket: datetime) -> list[datetime]:
        """Starts of the windows that hold the step-bucket starting at ``bucket``."""
        return [bucket - k * self.step for k in range(self.span // self.step)]


def format_time(at: datetime) -> str:
    """A time as every page, report and terminal line writes it: to the minute, UTC said (an
    aware time is converted; a naive one is taken as UTC)."""
    return f"{at if at.tzinfo is None else at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def format_span(span: timedelta) -> str:
    """A span in the largest unit that divides it exactly (``6h``, ``90m``, ``45s``): the inverse of
    ``parse_span`` for whole seconds."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_windows(text: str) -> list[WindowSpec]:
    """'5m,1h/5m,24h/1h' → specs; ValueError naming the problem otherwise."""
    specs = [WindowSpec.parse(part) for part in text.split(",") if part.strip()]
    if not specs:
        raise ValueError("no windows given; expected e.g. 5m,1h/5m,24h/1h")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"windows {text!r}: each span may appear once")
    return specs
