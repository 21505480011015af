"""Whole-batch subscriptions: a topic's records reach a handler a fetched batch at a time.

Faust turns every record into an event per subscribed stream, queues it, and an agent's
``take_events`` buffers, iterates and acknowledges it again, one by one; with a no-op agent that
machinery alone costs more than Moodwire's whole fold (bench/bench_aggregate.py reports both).
With ``subscribe`` the fetch loop (``transport.Consumer``) hands each fetched batch — Faust
``Message`` objects in fetch order — to the topic's handlers, awaited before the next fetch.

Faust still needs an agent per subscription: the agent makes the subscription and puts the
topic's partitions in the assignment with the tables. ``subscribe`` registers that agent as a
*subscription only*: Faust's streams never carry the topic's records, so one reaching it is a
defect and is raised.

Each message carries one reference per handler; a handler acknowledges what it is done with
(``Consumer.ack_many``) or keeps a message from the commit by not doing so. An error in a
handler stops the worker (as a crashed Faust fetcher does); its state replays from its markers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

BatchHandler = Callable[[list], Awaitable[None]]


def subscribe(app, topic, name: str, handler: BatchHandler) -> None:
    """Subscribe ``app`` to ``topic`` under the agent name ``name``; its records go to ``handler``
    a fetched batch at a time (``transport.install`` first)."""
    topic_name = topic.get_topic_name()

    async def subscription_only(stream):
        async for _event in stream:
            raise RuntimeError(f"subscription {name}: a {topic_name} record reached Faust's streams; its records "
                               "must go to the batch handler (streams.faustx.transport.install was not called?)")

    app.agent(topic, name=name)(subscription_only)
    app.transport.batches.setdefault(topic_name, []).append(handler)
