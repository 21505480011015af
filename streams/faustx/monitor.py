"""Faust's monitor without its per-event and per-table-access bookkeeping.

Faust's default sensor (``faust.sensors.Monitor``) counts every message, stream event and table
read or write, on the worker's one busy thread. Those figures feed Faust's web views, which
Moodwire does not serve (``web_enabled`` is off); operators read Moodwire's own metrics
(``moodwire.metrics``). Everything else the monitor does (rebalances, commits, sends, the end
offsets the consumer reports) is Faust's, unchanged. Only public sensor hooks are overridden.
"""

from __future__ import annotations

from faust.sensors import Monitor


class LeanMonitor(Monitor):
    """``Monitor`` minus the per-message, per-event and per-table-access hooks."""

    def on_message_in(self, tp, offset, message) -> None:
        pass

    def on_stream_event_in(self, tp, offset, stream, event) -> None:
        return None

    def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:
        pass

    def on_message_out(self, tp, offset, message) -> None:
        pass

    def on_table_get(self, table, key) -> None:
        pass

    def on_table_set(self, table, key, value) -> None:
        pass

    def on_table_del(self, table, key) -> None:
        pass


__all__ = ["LeanMonitor"]
