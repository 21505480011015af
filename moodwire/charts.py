"""Chart geometry shared by the dashboard and the back-test report (plain lists: no plotting
library here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def gaps(starts: Sequence) -> tuple[Any, list[bool]]:
    """Where windows are missing (hours or days without a headline), for sorted window
    ``starts``: the smallest step between two of them, and for each start whether more than that
    step separates it from the one before. A line drawn through them breaks there."""
    steps = [b - a for a, b in zip(starts, starts[1:]) if b > a]
    step = min(steps, default=None)
    return step, [i > 0 and step is not None and starts[i] - starts[i - 1] > step for i in range(len(starts))]


def band_polygons(xs: list, upper: list, lower: list) -> tuple[list, list]:
    """A band as one closed polygon per run of points without a gap (None), the runs separated
    by None: filled "toself", nothing is drawn across a gap (a "tonexty" fill between two lines
    with gaps joins them over it)."""
    out_x: list = []
    out_y: list = []
    run: list[int] = []
    for i in [*range(len(xs)), None]:
        if i is not None and upper[i] is not None and lower[i] is not None:
            run.append(i)
            continue
        if run:
            out_x += [xs[j] for j in run] + [xs[j] for j in reversed(run)] + [None]
            out_y += [upper[j] for j in run] + [lower[j] for j in reversed(run)] + [None]
        run = []
    return out_x, out_y


__all__ = ["band_polygons", "gaps"]
