"""The Faust adapter overrides private faust-streaming / aiokafka code: it must run on the
versions it was written against, and an upgrade must be a deliberate change of the adapter."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from streams.faustx import WRITTEN_AGAINST, version_mismatches


def test_installed_faust_and_aiokafka_are_the_versions_the_adapter_was_written_against():
    installed = {name: importlib.metadata.version(name) for name in WRITTEN_AGAINST}
    assert installed == WRITTEN_AGAINST, (
        f"installed {installed}, streams.faustx written against {WRITTEN_AGAINST}: re-read every override "
        "listed in streams/faustx/__init__.py against the new versions, run the exactness tests on both "
        "brokers, then update WRITTEN_AGAINST and the pins in pyproject.toml")
    assert version_mismatches() == {}


def test_the_pins_in_pyproject_match_the_adapter():
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for name, version in WRITTEN_AGAINST.items():
        pins = re.findall(rf'"{re.escape(name)}(?:\[[^\]]*\])?==([^"\s]+)"', text)
        assert pins == [version], f"pyproject.toml pins {name} to {pins}, the adapter was written against {version}"
