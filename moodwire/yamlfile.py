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
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{kind} {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{kind} {path} must hold a mapping of key: value, not a {type(data).__name__}")
    return data
