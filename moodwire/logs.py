"""Logging set-up for every entry point: plain or JSON lines, with context fields."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import datetime, timezone

from moodwire.redact import redact_logs

_CONTEXT_FIELDS = ("feed", "item_id", "fingerprint", "topic", "partition", "offset", "stage", "count")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"at": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for key in _CONTEXT_FIELDS:
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info or record.exc_text:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class RepeatFilter(logging.Filter):
    """The Kafka clients' warnings and errors at most once per ``interval_s`` per kind of message:
    with the broker away, they log the same connection error many times a second (4,375 ERROR
    lines in 71 s from one worker). The first of a kind passes; the next one after the interval
    passes saying how many were held back since. A kind is the logger, the level and the
    message with its numbers taken out."""

    CLIENTS = ("kafka", "aiokafka", "faust.transport")
    _NUMBERS = re.compile(r"\d+")

    def __init__(self, interval_s: float = 30.0, clock=time.monotonic) -> None:
        super().__init__()
        self.interval_s, self.clock = interval_s, clock
        self.kinds: dict[tuple, list] = {}  # kind → [when the last one passed, held back since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.CLIENTS):
            return True
        kind = (record.name, record.levelno, self._NUMBERS.sub("#", str(record.msg))[:200])
        now, seen = self.clock(), self.kinds.get(kind)
        if seen is not None and now - seen[0] < self.interval_s:
            seen[1] += 1
            return False
        held = seen[1] if seen is not None else 0
        self.kinds[kind] = [now, 0]
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {now - seen[0]:.0f} s)"
        return True


def limit_client_repeats(interval_s: float = 30.0) -> None:
    """Put a ``RepeatFilter`` on every handler of the root logger (filters on a logger do not
    see its children's records; a handler sees them all)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(interval_s))


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    limit_client_repeats()
    redact_logs()  # no receiver URL, token, header or password in any line
    for noisy in ("kafka", "aiokafka", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
