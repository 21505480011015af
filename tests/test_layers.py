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
    "models/serving": {"moodwire"},
    "models/training": {"moodwire", "models.serving"},
    "alerts": {"moodwire"},
    "dashboards": {"moodwire"},
    "streams/faustx": {"moodwire.overlay"},  # the adapter needs Faust, aiokafka and one pure core class
    "streams/ingest": {"moodwire"},
    "streams/classify": {"moodwire"},  # the engine is handed in (moodwire_cli)
    "streams/aggregate": {"moodwire", "alerts", "streams.faustx"},
    "streams/backtest": {"moodwire", "alerts", "streams.ingest", "streams.classify",
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
    never the development data folder beside the checkout (.ci/run also hides it where it can)."""
    reads = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
             if p.name != "test_layers.py" and re.search(r"""shared/data|["']\.\./shared|parent / ["']shared["']""", p.read_text())}
    assert not reads, reads


# Names with a leading underscore that their libraries document as public.
PUBLIC_UNDERSCORED = {"_mapping": "sqlalchemy's Row._mapping", "_exit": "os._exit"}


def test_private_names_of_libraries_are_used_only_in_the_faust_adapter():
    """A private name of Faust, mode, aiokafka or any other library (``obj._name``, ``obj`` not
    ``self``/``cls``) is used in streams/faustx only, where each is listed with why
    (streams/faustx/__init__.py)."""
    found = set()
    for pkg in ("moodwire", "models", "alerts", "dashboards", "streams", "moodwire_cli"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "faustx" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                        and node.attr not in PUBLIC_UNDERSCORED
                        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                    found.add(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert not found, "\n".join(sorted(found))


def test_the_aggregate_stage_reaches_the_consumer_only_through_its_source():
    """streams/aggregate acknowledges, rewinds, names the written partition and asks for log ends
    through ``streams.faustx.source.Source``: never ``app.consumer`` or the adapter's primitives."""
    door = re.compile(r"\.consumer\b|\bas_current\b|\bseek_wait\b|\back_many\b|\bhighwaters?\(|_current_event")
    found = {f"{path.relative_to(ROOT)}:{n} {line.strip()}" for path in (ROOT / "streams/aggregate").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if door.search(line) and not line.lstrip().startswith("#")}
    assert not found, "\n".join(sorted(found))


def test_no_file_name_is_used_by_three_modules_outside_the_command_line():
    """A name says which module it is: at most two modules share one (``__init__.py`` aside)."""
    names: dict[str, list[str]] = {}
    for pkg in ("moodwire", "models", "alerts", "dashboards", "streams"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path.name != "__init__.py":
                names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    crowded = {name: paths for name, paths in names.items() if len(paths) >= 3}
    assert not crowded, crowded
