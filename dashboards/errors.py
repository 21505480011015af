"""Errors of the dashboards package (under moodwire.errors.MoodwireError)."""

from __future__ import annotations

from moodwire.errors import MoodwireError


class DashboardError(MoodwireError):
    """The dashboard cannot start (users file, store); the message says what to fix."""
