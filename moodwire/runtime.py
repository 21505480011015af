"""Process settings shared by long-running commands."""

from __future__ import annotations

import gc

# Python's cyclic garbage collector, set for processes that make and drop many short-lived
# objects (decoded records and window records in the aggregate worker; data frames and figure
# objects in the dashboard): at the default thresholds (700, 10, 10) a young-generation pass
# runs every 700 allocations and an older-generation pass every 7,000, each walking what has
# survived — the worker's table state, the dashboard's app. Reference cycles are still collected:
# the young generation every 30,000 allocations, all generations more rarely.
GC_THRESHOLDS = (30_000, 20, 100)


def tune_gc() -> None:
    """``GC_THRESHOLDS``, after moving what start-up built (modules, the app) out of the
    collector's reach (``gc.freeze``): the rare full collection then walks only what the
    process made since."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
