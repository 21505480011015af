"""The Faust adapter: the only place Moodwire uses private faust-streaming or aiokafka names.

Everything else in ``streams/`` uses Faust's public API (``faust.App``, ``app.topic``,
``app.Table``, ``app.agent``, ``app.timer``, ``Consumer.seek_wait`` …) or none. Each override
below replaces one Faust behaviour, names what forces it and the test that shows it, and says
how to drop it; docs/aggregate-worker.md shows where each one sits in the worker.

``transport.Consumer.highwaters``  table recovery's end offsets, verified by a fetch.
    Why: the embedded broker (Tansu) answers ListOffsets "latest" with the start of the last
    record batch + 1, so recovery stopped short of the changelog's end.
    Shown by: tests/streams/test_faust_transport.py. Drop when the embedded broker lists true ends.
``transport.Consumer._drain_messages`` / ``getmany``  the fetch loop, without Faust's read-offset
    filter and with whole-batch delivery (``batches.subscribe``).
    Why: Faust drops every record below the last offset it read per partition, and a fetcher
    that starts past the committed offset after a restart delivers the skipped records later;
    and Faust's per-event delivery costs more than the fold itself.
    Shown by: tests/streams/test_faust_delivery.py, tests/streams/test_aggregate_worker.py
    (SIGKILL mid-stream). Drop when Faust delivers re-fetched records and offers batch delivery.
``transport.Consumer.perform_seek``  after Faust's seek to the committed offsets, seek back to
    the partition marker where that is earlier.
    Why: the committed offset may pass what the state folded in (acknowledged runs are committed
    past holes). Shown by: test_aggregate_worker.py (committed offsets past the state).
``transport.Consumer.ack_many``  acknowledgement of a batch under one lock.
``state.as_current``  sets ``faust.streams._current_event``: table writes of a micro-batch that
    mixes source partitions go to the partition named (changelog and rocksdb store).
    Drop when Faust tables accept a partition per write.
``state.enqueue_records`` / ``state.Changelog``  the app's aiokafka producer, in whole batches
    (``app.producer._ensure_producer()``); the table's store written once the changelog
    acknowledged. Why: per-record ``Topic.send`` cost, and a rocksdb store written ahead of its
    changelog survives SIGKILL with markers the changelog never received.
    Shown by: tests/streams/test_faust_state.py.
``transport._resume``  finishes a delivery coroutine that had to wait, as an asyncio Task would,
    clearing the awaited future's ``_asyncio_future_blocking`` (asyncio's private protocol flag
    for a future yielded by a coroutine) before awaiting it.
    Why: ``_deliver`` runs deliveries inline (no Task per event) and hands a waiting one on.
    Shown by: tests/streams/test_faust_delivery.py (results, errors, cancellation). Drop with
    the inline delivery, i.e. with the ``_drain_messages`` override above.
``monitor.LeanMonitor``  Faust's monitor without per-event bookkeeping (public hooks).
``worker.Worker``  SIGUSR2 logs the worker's stacks instead of mode's pdb (``_on_sigusr2``);
    ``worker.dump_stacks`` follows each agent's actors (``agent._actors``: Faust keeps them
    private) into the chain they await. Shown by: tests/streams/test_aggregate_worker.py (the
    SIGUSR2 dump). Drop when mode's handler can be configured; the actors' part when Faust
    lists an agent's actors.
``probe``  reads and seeds the consumer's private bookkeeping (``_committed_offset``,
    ``_unacked_messages``, ``_acked``, ``_n_acked``) and the conductor's ``_update_indices``: for
    the adapter's tests and diagnostics only, never in the worker's path. Shown by:
    tests/streams/test_faust_delivery.py. Drop with the overrides it observes.
``source.Source``  the one door of the stages: ``write_to`` (``state.as_current``), ``ack``
    (``ack_many``), ``rewind`` (``seek_wait``), ``assigned``, ``end`` / ``ends`` (highwaters).
    streams/aggregate calls nothing else of the consumer (tests/test_layers.py), and no
    module outside this package uses a private name of any library (tests/test_layers.py).

``WRITTEN_AGAINST`` pins the versions this was written and tested against; tests/streams/
test_faustx_versions.py fails when the installed ones differ, and the worker logs a warning.
"""

from __future__ import annotations

import importlib.metadata
import logging

WRITTEN_AGAINST = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}

log = logging.getLogger("moodwire.faustx")


def version_mismatches() -> dict[str, tuple[str, str | None]]:
    """Distribution → (written against, installed) for every one that differs."""
    out = {}
    for name, expected in WRITTEN_AGAINST.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != expected:
            out[name] = (expected, installed)
    return out


def warn_on_mismatch() -> None:
    """Log which versions differ from ``WRITTEN_AGAINST`` (the adapter's overrides may not fit)."""
    for name, (expected, installed) in version_mismatches().items():
        log.warning("%s %s is installed; streams.faustx was written against %s: re-check its overrides "
                    "(streams/faustx/__init__.py) before trusting this worker", name, installed, expected)
