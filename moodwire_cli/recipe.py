"""``moodwire recipe``: run a model recipe (``models/recipes/*.yaml``), a list of moodwire commands
that rebuild a model step by step, resumable."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import click

from moodwire.errors import MoodwireError
from moodwire_cli.context import settings_of


class RecipeError(MoodwireError):
    """A recipe file that cannot be read or run."""


def load_recipe(path: Path, data: str, work: str) -> tuple[str, list[tuple[str, list[str]]], dict]:
    """(name, [(step name, moodwire arguments)], expected figures) with {data} and {work} filled in."""
    import yaml

    try:
        recipe = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"cannot read the recipe {path}: {exc}") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("steps"), list) or not recipe["steps"]:
        raise RecipeError(f"{path}: a recipe is a mapping with a non-empty list 'steps' (see models/recipes/)")
    steps = []
    for i, step in enumerate(recipe["steps"], 1):
        if not isinstance(step, dict) or not isinstance(step.get("run"), list) or not step["run"]:
            raise RecipeError(f"{path}: step {i} needs 'run', a list of moodwire arguments")
        args = [str(a).replace("{data}", data).replace("{work}", work) for a in step["run"]]
        steps.append((str(step.get("name", f"step {i}")), args))
    return str(recipe.get("name", path.stem)), steps, dict(recipe.get("expect") or {})


@click.command()
@click.argument("recipe_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--workdir", type=click.Path(file_okay=False), required=True,
              help="Where the steps write their models; a step that finished is skipped when run again.")
@click.option("--dry-run", is_flag=True, help="Print the commands, run nothing.")
@click.pass_context
def recipe(ctx: click.Context, recipe_file, workdir, dry_run) -> None:
    """Rebuild a model from a recipe file (models/recipes/default-model.yaml rebuilds the default
    model from the base encoder): each step a moodwire command, run in order, resumable."""
    settings = settings_of(ctx)
    work = Path(workdir)
    name, steps, expect = load_recipe(Path(recipe_file), str(settings.data_dir), str(work))
    done = work / ".done"
    click.echo(f"recipe: {name} ({len(steps)} steps) in {work}")
    config = ctx.obj.get("config") if ctx.obj else None  # the same settings file for every step
    for i, (step, args) in enumerate(steps, 1):
        stamp = done / f"{i:02d}"
        line = "moodwire " + shlex.join(args)
        if dry_run:
            click.echo(f"[{i}/{len(steps)}] {step}\n    {line}")
            continue
        if stamp.exists():
            click.echo(f"[{i}/{len(steps)}] {step}: done before, skipped")
            continue
        click.echo(f"[{i}/{len(steps)}] {step}\n    {line}")
        status = subprocess.call([sys.executable, "-m", "moodwire_cli", *(["--config", config] if config else []),
                                  *args])
        if status != 0:
            raise RecipeError(f"step {i} ({step}) failed with status {status}; fix it and run the same command "
                              "again: finished steps are skipped")
        done.mkdir(parents=True, exist_ok=True)
        stamp.write_text(line + "\n")
    if expect:
        click.echo("what the recipe's model should come near (the committed model's figures):")
        for key, value in expect.items():
            click.echo(f"  {key}: {value}")
