"""Running the aggregate worker process: garbage-collector settings, the Kafka clients' log
levels, and Faust's worker until SIGINT/SIGTERM."""

from __future__ import annotations

import gc
import logging

from streams.faustx import warn_on_mismatch
from streams.faustx.worker import Worker

# Python's cyclic garbage collector, set for a worker that makes and drops ~100 objects per
# record (decoded records, Faust messages, window records): at the default thresholds
# (700, 10, 10) a young-generation pass runs every 700 allocations and an older-generation pass
# every 7,000, each walking the surviving table state. Reference cycles are still collected:
# the young generation every 30,000 allocations, all generations more rarely.
GC_THRESHOLDS = (30_000, 20, 100)


def tune_gc() -> None:
    """``GC_THRESHOLDS``, after moving what start-up built (modules, the app) out of the
    collector's reach (``gc.freeze``): the rare full collection then walks only the worker's
    own state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def quiet_clients(level: str) -> None:
    """The Kafka clients' loggers at INFO or above: aiokafka logs every produced batch at DEBUG,
    and building those records costs a busy worker time even when nothing prints them. Called
    once the worker's own logging set-up has run (it resets levels)."""
    for name in ("aiokafka", "faust.transport", "kafka"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level.upper())))


def run_worker(app, loglevel: str = "INFO") -> None:
    """Run ``app`` (an ``AggregateApp``) until SIGINT/SIGTERM (clean shutdown, offsets committed);
    SIGUSR2 logs its stacks (``faustx.worker.dump_stacks``)."""
    warn_on_mismatch()
    tune_gc()
    worker = Worker(app.app, loglevel=loglevel.lower(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
