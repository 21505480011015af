"""Errors of the alerts package (all under moodwire.errors.MoodwireError)."""

from __future__ import annotations

from moodwire.errors import MoodwireError


class AlertsError(MoodwireError):
    """Root of the alerts package's errors."""


class RuleError(AlertsError):
    """An alert rules file that cannot be used; the message names the file, the rule and the key."""
