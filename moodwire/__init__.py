"""Moodwire: a streaming sentiment monitor for financial news.

This package is the small shared core every other package stands on: settings, wire records,
topic names, Kafka client settings and publishing, the store, watchlists, metrics and the error
hierarchy. It imports nothing from ``models``, ``streams``, ``alerts``, ``dashboards`` or
``moodwire_cli``.
"""

__version__ = "0.1.0"
