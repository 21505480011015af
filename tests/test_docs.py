"""Documentation that cannot rot: relative links resolve, every command and option the docs
name exists in the command line, the configuration reference is the settings object's, and no
text of the repository tells its history in work sessions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"\bmoodwire((?:\s+[a-z][a-z0-9-]*)+)((?:\s+[^\s`|]+)*)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def test_every_page_exists_and_the_readme_is_short():
    names = {p.name for p in PAGES}
    assert {"README.md", "analysts.md", "risk-teams.md", "data-engineers.md", "configuration.md", "model.md",
            "benchmarks.md"} <= names
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: link {target} points nowhere"
        assert ROOT in path.parents or path == ROOT, f"{page.name}: link {target} leaves the repository"


def _commands() -> click.Group:
    from moodwire_cli.main import cli

    return cli


def _resolve(words: list[str]) -> tuple[click.Command, list[str]] | None:
    """The deepest command the words name, and the words naming it."""
    command: click.Command = _commands()
    path: list[str] = []
    for word in words:
        if isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
            path.append(word)
        else:
            break
    return (command, path) if path else None


def _options(command: click.Command) -> set[str]:
    names = set()
    for param in command.params:
        names.update(o for o in getattr(param, "opts", []) + getattr(param, "secondary_opts", []) if o.startswith("--"))
    return names | {"--help"}


def _named_commands(text: str):
    for line in text.splitlines():
        for match in COMMAND.finditer(line):
            words = match.group(1).split()
            yield line, words, OPTION.findall(match.group(0))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_and_option_the_docs_name_exists(page: Path):
    checked = 0
    for line, words, options in _named_commands(page.read_text(encoding="utf-8")):
        found = _resolve(words)
        if found is None:
            assert words[0] not in {"backtest", "watchlists", "train", "evaluate"}, line
            continue  # prose: "moodwire is ...", "moodwire demo's ..."
        command, path = found
        known = _options(command) | _options(_commands())
        for option in options:
            assert option in known, f"{page.name}: `moodwire {' '.join(path)}` has no option {option}: {line.strip()}"
        checked += 1
    if page.relative_to(ROOT).as_posix() in ("README.md", "docs/risk-teams.md", "docs/model.md",
                                             "docs/data-engineers.md"):
        assert checked > 0


def test_the_commands_the_docs_name_answer_help():
    named = set()
    for page in PAGES:
        for _, words, _ in _named_commands(page.read_text(encoding="utf-8")):
            found = _resolve(words)
            if found:
                named.add(tuple(found[1]))
    assert ("backtest",) in named and ("watchlists", "check") in named
    for path in sorted(named):
        done = subprocess.run([sys.executable, "-m", "moodwire_cli", *path, "--help"], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0 and "Usage:" in done.stdout, (path, done.stderr[-500:])


def test_the_configuration_reference_lists_exactly_the_settings():
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_config_reference import render

    from moodwire.settings import ENV_PREFIX, Settings

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert text == render(), "docs/configuration.md is out of date: run scripts/make_config_reference.py"
    listed = set(re.findall(r"^\| `(MOODWIRE_[A-Z0-9_]+)` \|", text, flags=re.M))
    assert listed == {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def test_no_text_in_the_repository_tells_its_history_in_sessions():
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT).stdout.split()
    hits = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in {".md", ".py", ".yaml", ".yml", ".toml", ".txt", ""} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        hits += [f"{name}: {m.group(0)}" for m in re.finditer(r"(?i)session [0-9]+", text)]
    assert hits == []


YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def _examples(first_key: str) -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), block) for page in PAGES
            for block in YAML_BLOCK.findall(page.read_text(encoding="utf-8"))
            if block.lstrip().startswith(first_key + ":")]


def test_the_watchlist_and_rule_examples_in_the_docs_load(tmp_path: Path):
    """A file copied from README or docs/ is accepted as it is shown."""
    from alerts.rules import load_rules
    from models.serving.labels import TOPIC_LABELS
    from moodwire.watchlists import load_watchlists

    watchlists, rules = _examples("watchlists"), _examples("rules")
    assert {page for page, _ in watchlists} >= {"README.md", "docs/risk-teams.md"} and rules
    for i, (page, block) in enumerate(watchlists + rules):
        path = tmp_path / f"{i}.yaml"
        path.write_text(block, encoding="utf-8")
        if block.lstrip().startswith("watchlists:"):
            assert load_watchlists(path, tuple(TOPIC_LABELS)), page
        else:
            assert load_rules(path), page


TOP = ("moodwire", "models", "alerts", "dashboards", "streams", "moodwire_cli", "tests", "bench", "scripts", "config",
       "docs", "docker", ".ci")
REPO_PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*\w)" % "|".join(re.escape(t) for t in TOP))


def test_every_repository_path_named_in_docs_docstrings_and_configs_exists():
    """A path such as streams/aggregate/fold.py named in a page, a module, a config file or a
    script points at something that is there (globs and placeholders aside)."""
    sources = [*PAGES, *(p for pkg in TOP[:8] for p in (ROOT / pkg).rglob("*.py")),
               *(ROOT / "config").glob("*.yaml"), *(p for p in (ROOT / "scripts").iterdir() if p.is_file()),
               ROOT / "docker-compose.yml", ROOT / "Dockerfile", ROOT / "Dockerfile.cpu"]
    missing = {f"{source.relative_to(ROOT)}: {name}" for source in sources
               for name in (m.group(1).rstrip(".") for m in REPO_PATH.finditer(source.read_text(errors="replace")))
               if "*" not in name and "<" not in name and not (ROOT / name).exists()}
    assert not missing, sorted(missing)
