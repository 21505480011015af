"""The keys of the aggregate table: buckets per (key, step, start) and one marker per partition."""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.aggregate.windows import EPOCH

MARKER_PREFIX = "~partition/"
SEP = "\x1f"


def bucket_key(topic: str, step: timedelta, start: datetime) -> str:
    return state_key(topic, int(step.total_seconds()), int((start - EPOCH).total_seconds()))


def state_key(topic: str, step_s: int, start_s: int) -> str:
    return f"{topic}{SEP}{step_s}{SEP}{start_s}"


def parse_bucket_key(key: str) -> tuple[str, timedelta, datetime]:
    topic, step_s, start_s = key_parts(key)
    return topic, timedelta(seconds=step_s), EPOCH + timedelta(seconds=start_s)


def key_parts(key: str) -> tuple[str, int, int]:
    """(topic, step, bucket start) of a bucket key, in whole seconds (the inverse of ``state_key``)."""
    topic, step, start = key.split(SEP)
    return topic, int(step), int(start)


def marker_key(partition: int) -> str:
    return f"{MARKER_PREFIX}{partition}"
