"""Errors of the streaming stages."""

from __future__ import annotations

from moodwire.errors import MoodwireError


class StreamError(MoodwireError):
    """Base class of errors in ingest, classify and aggregation."""


class SourceConfigError(StreamError):
    """The feeds file is missing, malformed, or names a bad value (file, feed and key are named)."""


class FetchError(StreamError):
    """One poll of one feed failed (down, timeout, too large, not a feed). Retried with back-off."""

    def __init__(self, feed: str, reason: str, retryable: bool = True) -> None:
        super().__init__(f"feed {feed!r}: {reason}")
        self.feed, self.reason, self.retryable = feed, reason, retryable


class ReplayError(StreamError):
    """A replay file cannot be read or a row cannot become a news item."""


class BacktestError(StreamError):
    """A back-test cannot run: its news, rules, expectations or output folder name the problem."""
