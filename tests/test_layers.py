"""Imports run one way: the core at the bottom, the command line at the top, each stage on
what is below it (docs/design.md). Read from the source, every import including the ones inside
functions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("moodwire", "models", "alerts", "dashboards", "streams", "moodwire_cli", "tests", "bench")

# package → the project packages it may import (besides itself)
ALLOWED = {
    "moodwire": set(),
    "models": {"moodwire"},  # (its two rooms below are held to more)
    # serving loads a model and scores; it never needs the training code (an image that
    # serves imports neither torch's optimisers nor pandas through it)
    "models/serving": {"moodwire", "models.errors"},
    "models/training": {"moodwire", "models.errors", "models.serving"},
    "alerts": {"moodwire"},
    "dashboards": {"moodwire"},
    "streams/faustx": set(),
    "streams/ingest": {"moodwire", "streams.errors"},
    "streams/classify": {"moodwire", "streams.errors"},  # the engine is handed in (moodwire_cli)
    "streams/aggregate": {"moodwire", "alerts", "streams.faustx", "streams.errors"},
    "streams/backtest": {"moodwire", "alerts", "streams.errors", "streams.ingest", "streams.classify",
                         "streams.aggregate"},
    "moodwire_cli": {"moodwire", "models", "alerts", "dashboards", "streams"},
    "bench": {"moodwire", "models", "streams", "alerts", "dashboards", "bench"},  # benchmarks drive every package
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in PROJECT}


def allowed(name: str, package: str) -> bool:
    own = package.replace("/", ".")
    return any(name == p or name.startswith(p + ".") for p in (own, *ALLOWED[package]))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_is_below_it(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    wrong = {f"{path.relative_to(ROOT)} imports {name}" for path in files for name in imported(path)
             if not allowed(name, package)}
    assert not wrong, "\n".join(sorted(wrong))


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for pkg in ("moodwire", "streams", "alerts", "dashboards", "models",
                                                      "moodwire_cli")
            for p in (ROOT / pkg).rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_no_test_reads_the_development_data_folder():
    """A fresh clone has nothing beside it: tests read the committed fixture (tests/fixtures),
    never ../shared (.ci/run also hides that folder from the run where it can)."""
    reads = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
             if p.name != "test_layers.py" and re.search(r"""shared/data|["']\.\./shared|parent / ["']shared["']""", p.read_text())}
    assert not reads, reads
