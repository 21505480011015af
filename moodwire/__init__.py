"""Moodwire: a streaming sentiment monitor for financial news.

This package is the small shared core: settings, wire records, topic names,
the error hierarchy and the ``moodwire`` command line.
"""

__version__ = "0.1.0"
