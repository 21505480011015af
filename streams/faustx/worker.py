"""Faust's worker with a stack dump on SIGUSR2 (mode's default starts pdb on the worker's
terminal, which hangs a worker that has none)."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import traceback
from pathlib import Path

import faust

log = logging.getLogger("moodwire.aggregate")


def dump_stacks(app=None) -> None:
    """Log every asyncio task's and thread's stack at WARNING: ask a worker that seems stalled
    (lag > 0, nothing processed) what it is waiting on. An agent's own chain is listed from its
    actor (a task awaiting an actor cannot be followed into it)."""
    out = io.StringIO()
    for agent in (app.agents.values() if app is not None else ()):
        for actor in list(getattr(agent, "_actors", ())):  # Faust keeps an agent's actors private
            print(f"--- agent {agent.name}: " + " → ".join(_awaiting(actor.it)), file=out)
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:  # no loop running in this thread
        tasks = set()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        print(f"--- task {task.get_name()}: " + " → ".join(_awaiting(task.get_coro())), file=out)
    frames = sys._current_frames()
    for ident, stack in frames.items():
        print(f"--- thread {ident}", file=out)
        traceback.print_stack(stack, limit=10, file=out)
    log.warning("stack dump (SIGUSR2): %d asyncio tasks, %d threads\n%s", len(tasks), len(frames), out.getvalue())


def _awaiting(coro) -> list[str]:
    """The chain of coroutines (and generators) ``coro`` is suspended in, outermost first."""
    chain, first = [], coro
    while coro is not None and len(chain) < 20:
        if isinstance(coro, asyncio.Task):  # awaiting another task: follow it
            coro = coro.get_coro()
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain or [repr(first)]


class Worker(faust.Worker):
    def __init__(self, *args, after_logging=None, **kwargs) -> None:
        """``after_logging``: called once Faust has set up logging (to add filters)."""
        self.after_logging = after_logging
        super().__init__(*args, **kwargs)

    def _on_sigusr2(self) -> None:  # overrides mode's pdb-on-SIGUSR2
        dump_stacks(self.app)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:  # mode's public hook
        super().on_setup_root_logger(logger, level)
        if self.after_logging is not None:
            self.after_logging()
