"""Write docs/configuration.md from the settings object (tests/test_docs.py checks it is current).

    .venv/bin/python scripts/make_config_reference.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moodwire.settings import ENV_PREFIX, Settings  # noqa: E402

HEAD = """# Configuration reference

Every Moodwire command reads one settings object, once: defaults, then a YAML file (`--config
FILE` or `MOODWIRE_CONFIG`) whose keys are the names below in lower case without the prefix
(`kafka_bootstrap: kafka-1:9092`), then environment variables. An unknown key or a bad value
stops the command with one line naming the key, the value and where it came from.

This page is generated from the settings object by `scripts/make_config_reference.py`; a test
fails when it is out of date.

| variable | default | meaning |
|---|---|---|
"""


def _default(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {_default(field.default)} | {text} |")
    return HEAD + "\n".join(rows) + "\n"


if __name__ == "__main__":
    (ROOT / "docs" / "configuration.md").write_text(render(), encoding="utf-8")
    print("wrote docs/configuration.md")
