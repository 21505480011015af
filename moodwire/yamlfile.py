"""Reading a YAML file that must hold a mapping, with errors that name the file and its role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from moodwire.errors import MoodwireError


def read_mapping(path: str | Path, kind: str, error: type[MoodwireError], hint: str = "") -> dict[str, Any]:
    """The mapping in ``path`` (an empty file is an empty mapping); ``error`` for anything else.

    ``kind`` names the file in messages ("settings file", "feeds file"); ``hint`` is added
    to the "does not exist" message (where the path came from).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{kind} {path} does not exist{hint}") from None
    except IsADirectoryError:
        raise error(f"{kind} {path} is a directory, not a file") from None
    except yaml.MarkedYAMLError as exc:  # one line: where, and what the parser expected
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise error(f"{kind} {path} is not valid YAML: {where}{what}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{kind} {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{kind} {path} must hold a mapping of key: value, not a {type(data).__name__}")
    return data


def describe_error(error: dict, data: Any, list_key: str, noun: str, renames: dict[str, str] | None = None) -> str:
    """One pydantic error of a file holding a list of named entries (``rules:``, ``watchlists:``)
    as a user reads it: ``rule 'name', key: message``. Union members pydantic puts in the path
    (``list[str]``, a model's class name) and list indexes are left out; ``renames`` maps field
    names to the keys written in the file (``for_`` → ``for``)."""
    loc = list(error["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int):
        index = loc[1]
        entries = data.get(list_key) if isinstance(data, dict) else None
        name = entries[index].get("name") if isinstance(entries, list) and index < len(entries) and \
            isinstance(entries[index], dict) else None
        where = f"{noun} {name!r}" if name else f"{noun} #{index + 1}"
        loc = loc[2:]
    parts = [str(p) for p in loc if not isinstance(p, int)
             and not str(p).startswith(("list[", "literal[", "function-")) and not str(p)[:1].isupper()]
    key = ".".join((renames or {}).get(p, p) for p in parts)
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
    return ", ".join(x for x in (where, f"{key}: {message}" if key else message) if x)
