"""Ingest: poll RSS/Atom feeds (and the pages they link) or replay a recorded file, normalise
and de-duplicate the items and publish them to ``news.raw``."""
