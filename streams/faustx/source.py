"""``Source``: the one door through which a stage reaches the worker's consumer for one
subscribed topic. A handler folds a partition's records, says which partition its table writes
go to (``write_to``), acknowledges what it is done with (``ack``), and may read a partition again
from an offset (``rewind``); timers ask which partitions are assigned and how far the broker's
log runs (``assigned``, ``end``, ``ends``). The stages never touch ``app.consumer`` or Faust's
current event themselves: what those calls rely on is listed in ``streams/faustx/__init__.py``."""

from __future__ import annotations

from faust.types import TP

from streams.faustx.state import as_current


class Source:
    def __init__(self, app, topic: str) -> None:
        self.app, self.topic = app, topic

    def tp(self, partition: int) -> TP:
        return TP(self.topic, partition)

    def write_to(self, message) -> None:
        """The table writes that follow go to ``message``'s partition (changelog and rocksdb
        store), whatever partition the last fetched record came from."""
        as_current(self.app, message)

    def ack(self, messages) -> None:
        """Done with ``messages``: the group's committed offset may pass them."""
        self.app.consumer.ack_many(messages)

    async def rewind(self, partition: int, offset: int) -> None:
        """Read ``partition`` again from ``offset`` (in the consumer's own task, waited for)."""
        await self.app.consumer.seek_wait({self.tp(partition): offset})

    def assigned(self) -> list[int]:
        """This worker's partitions of the topic, in order."""
        return sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topic)

    def end(self, partition: int) -> int | None:
        """The partition's log end from the broker's last fetch response (None: not known yet)."""
        try:
            return self.app.consumer.highwater(self.tp(partition))
        except Exception:  # noqa: BLE001 - the consumer is not ready (a rebalance)
            return None

    async def ends(self, partitions) -> dict[int, int]:
        """The log ends of ``partitions``, asked of the broker ({} while it is away or the group
        rebalances: ask again later)."""
        try:
            found = await self.app.consumer.highwaters(*(self.tp(p) for p in partitions))
        except Exception:  # noqa: BLE001 - the broker is away or the group rebalances
            return {}
        return {tp.partition: end for tp, end in found.items()}
