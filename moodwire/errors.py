"""Every error Moodwire raises on purpose, in one tree.

    MoodwireError
    ├── SettingsError     moodwire.settings  (bad key / value / file)
    ├── RecordError       moodwire.records   (a message that fails to decode)
    ├── BrokerError       moodwire.broker    (embedded broker cannot start, port taken, ...)
    ├── ModelError        models             (data, labels, artefacts, inference)
    │   ├── DataError
    │   └── ArtefactError
    ├── StreamError       streams            (ingest, classify, aggregate, replay, back-test)
    │   ├── SourceConfigError, FetchError, ReplayError, BacktestError
    ├── AlertsError       alerts
    │   └── RuleError
    └── DashboardError    dashboards

Every error carries what a user needs to fix the cause; the CLI prints
``str(error)`` and exits with status 2, never a bare traceback.
"""

from __future__ import annotations


class MoodwireError(Exception):
    """Base class of all errors Moodwire raises deliberately."""


class SettingsError(MoodwireError):
    """A setting is missing, malformed or out of range."""


class RecordError(MoodwireError):
    """A wire record could not be decoded or validated."""


class BrokerError(MoodwireError):
    """The Kafka broker could not be started or reached."""


# The classifier (models/)
class ModelError(MoodwireError):
    """Base class of classifier errors."""


class DataError(ModelError):
    """A labelled data file is unusable (missing, empty, bad column, unknown label)."""


class ArtefactError(ModelError):
    """A saved model directory is missing a file or is inconsistent."""


# The streaming stages (streams/)
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


# Alerts (alerts/)
class AlertsError(MoodwireError):
    """Root of the alerts package's errors."""


class RuleError(AlertsError):
    """An alert rules file that cannot be used; the message names the file, the rule and the key."""


# The dashboard (dashboards/)
class DashboardError(MoodwireError):
    """The dashboard cannot start (users file, store); the message says what to fix."""
