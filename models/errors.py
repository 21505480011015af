"""Errors of the classifier package."""

from __future__ import annotations

from moodwire.errors import MoodwireError


class ModelError(MoodwireError):
    """Base class of classifier errors."""


class DataError(ModelError):
    """A labelled data file is unusable (missing, empty, bad column, unknown label)."""


class ArtefactError(ModelError):
    """A saved model directory is missing a file or is inconsistent."""
