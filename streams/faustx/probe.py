"""Faust's consumer bookkeeping, read and seeded for the adapter's tests and for diagnostics:
which offsets are acknowledged, how many since the last commit, which messages are still
unacknowledged. Private Faust attributes, fenced here with the rest of the adapter."""

from __future__ import annotations

from faust.types import TP


async def enable_acks(app, *topics) -> None:
    """Subscribe ``topics`` as Faust's conductor does, so that acknowledgements are recorded."""
    for topic in topics:
        app.topics.add(topic)
    await app.topics._update_indices()


def seed(consumer, tp: TP, committed: int, unacked=()) -> None:
    """Set the committed offset of ``tp`` and track ``unacked`` messages as delivered."""
    consumer._committed_offset[tp] = committed
    for message in unacked:
        consumer._unacked_messages.add(message)


def bookkeeping(consumer, tp: TP) -> tuple[list[int], int, list[int]]:
    """(acknowledged offsets of ``tp`` not yet committed, acknowledgements since the last
    commit, offsets of messages still unacknowledged)."""
    return (sorted(consumer._acked[tp]), consumer._n_acked, sorted(m.offset for m in consumer._unacked_messages))
