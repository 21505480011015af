"""Running the aggregate worker process: garbage-collector settings (``moodwire.runtime``), the
Kafka clients' log levels, and Faust's worker until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from moodwire.logs import limit_client_repeats
from moodwire.runtime import tune_gc
from streams.faustx import warn_on_mismatch
from streams.faustx.worker import Worker


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
    worker = Worker(app.app, loglevel=loglevel.lower(), quiet=True, redirect_stdouts=False,
                    after_logging=limit_client_repeats)  # the clients' repeated errors, from the start
    worker.execute_from_commandline()
