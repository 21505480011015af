"""The root of every error Moodwire raises on purpose.

    MoodwireError
    ├── SettingsError            moodwire.settings  (bad key / value / file)
    ├── RecordError              moodwire.records   (a message that fails to decode)
    ├── BrokerError              moodwire.broker    (embedded broker cannot start, port taken, ...)
    ├── models.errors.ModelError (data, labels, artefacts, inference)
    ├── streams.errors.StreamError
    └── alerts.errors.AlertError

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
