"""Alert rule files: valid ones load, mistakes fail fast naming the file, the rule and the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from moodwire.errors import RuleError
from alerts.rules import load_rules

GOOD = """
rules:
  - name: negative-turn
    topics: all
    window: 1h
    when: {mean_below: -0.3}
    min_count: 5
    for: 10m
    recover: -0.1
    keep_firing_for: 15m
    severity: critical
    labels: {team: credit-risk}
  - name: energy-spike
    topics: {pattern: "^Energy"}
    window: 5m
    when: {volume_spike: {z: 3}}
  - name: bank-shift
    topics: [Financials, "Legal | Regulation"]
    window: 1h
    when: {shift: {below: -0.4}}
    baseline: 24h
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_a_valid_rule_file_loads_with_its_guards(tmp_path):
    rules = load_rules(write(tmp_path, GOOD), windows=["5m", "1h", "24h"])
    neg, spike, shift = rules
    assert neg.for_ == timedelta(minutes=10) and neg.keep_firing_for == timedelta(minutes=15)
    assert neg.threshold == -0.3 and neg.recover == -0.1 and neg.labels == {"team": "credit-risk"}
    assert neg.selects("Anything") and spike.selects("Energy | Oil") and not spike.selects("Macro")
    assert shift.selects("Financials") and not shift.selects("Macro") and shift.threshold == -0.4
    assert spike.when.kind == "volume_spike" and spike.threshold == 3
    at_once = load_rules(write(tmp_path, GOOD.replace("for: 10m", "for: 0s").replace("keep_firing_for: 15m",
                                                                                    "keep_firing_for: 0m")))[0]
    assert at_once.for_ == at_once.keep_firing_for == timedelta(0)  # 0s: fire and resolve at once


@pytest.mark.parametrize("mistake, message", [
    (("    severity: critical", "    severty: critical"), "rule 'negative-turn', severty: unknown key"),
    (("when: {mean_below: -0.3}", "when: {mean_below: -0.3, mean_above: 0.2}"),
     "rule 'negative-turn', when: give exactly one condition"),
    (("when: {mean_below: -0.3}", "when: {mean_bellow: -0.3}"), "rule 'negative-turn', when.mean_bellow: unknown key"),
    (("    for: 10m", "    for: ten minutes"), "rule 'negative-turn', for: 'ten minutes' is not a duration"),
    (("    recover: -0.1", "    recover: -0.5"), "recover (-0.5) must be above the threshold (-0.3)"),
    (('pattern: "^Energy"', 'pattern: "(Energy"'), "rule 'energy-spike', topics.pattern: not a regular expression"),
    (("when: {volume_spike: {z: 3}}", "when: {volume_spike: {}}"), "give exactly one of z"),
    (("  - name: bank-shift", "  - name: negative-turn"), "rule name 'negative-turn' is used twice"),
    (("    window: 5m", "    window: five"), "rule 'energy-spike', window: 'five' is not a duration"),
])
def test_a_mistake_fails_fast_with_the_file_rule_and_key(tmp_path, mistake, message):
    old, new = mistake
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_window_the_aggregator_does_not_emit_is_refused(tmp_path):
    with pytest.raises(RuleError, match=r"rule 'negative-turn': window: '1h' is not aggregated"):
        load_rules(write(tmp_path, GOOD), windows=["5m", "24h"])


@pytest.mark.parametrize("text, message", [("", "rules: Field required"), ("rules: []", "at least 1"),
                                           ("- a\n- b", "must hold a mapping"), ("rules: [", "not valid YAML")])
def test_empty_or_broken_files(tmp_path, text, message):
    with pytest.raises(RuleError, match=message):
        load_rules(write(tmp_path, text))


def test_a_missing_file_names_the_setting(tmp_path):
    with pytest.raises(RuleError, match="does not exist .*MOODWIRE_ALERT_RULES"):
        load_rules(tmp_path / "nope.yaml")


def test_the_example_rules_file_is_valid_for_the_default_windows():
    from moodwire.settings import load_settings
    from moodwire.spans import parse_windows

    root = Path(__file__).resolve().parents[2]
    windows = [w.name for w in parse_windows(load_settings(environ={}).aggregate_windows)]
    assert len(load_rules(root / "config" / "rules.example.yaml", windows)) == 3
