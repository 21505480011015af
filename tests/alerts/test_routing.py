"""The notifier configuration: validation messages, matchers, the routing tree, silences."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts.routing import Matcher, NotifyConfigError, Silence, load_notify_config, route, silenced_by

ROOT = Path(__file__).resolve().parents[2]

TREE = """
route:
  receiver: default
  group_by: [rule]
  group_wait: 1m
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_wait: 5s
      continue: true
      routes:
        - matchers: ['topic=~"Energy.*"']
          receiver: energy-desk
    - matchers: ['team="risk"']
      receiver: risk
    - matchers: ['team="risk"']
      receiver: never-reached
receivers:
  - {name: default, log: {path: a.jsonl}}
  - {name: pager, webhook: {url: "http://127.0.0.1:1/x"}}
  - {name: energy-desk, slack: {url: "https://hooks.example.org/1"}}
  - {name: risk, email: {to: [risk@example.org], from: mw@example.org, host: localhost}}
  - {name: never-reached, log: {path: b.jsonl}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    return path


def labels(**extra) -> dict[str, str]:
    return {"rule": "negative-turn", "topic": "Macro", "severity": "warning", "window": "1h", **extra}


def test_the_example_configuration_loads():
    config = load_notify_config(ROOT / "config" / "notify.example.yaml")
    assert [r.name for r in config.receivers] == ["risk-log"]


def test_the_deepest_matching_route_decides_and_children_inherit(tmp_path):
    config = load_notify_config(write(tmp_path, TREE))
    plain = route(config, labels())
    assert [(d.receiver, d.route, d.group_wait) for d in plain] == [("default", "route", timedelta(minutes=1))]
    critical = route(config, labels(severity="critical"))
    assert [(d.receiver, d.group_wait, d.group_by) for d in critical] == [("pager", timedelta(seconds=5), ("rule",))]
    energy = route(config, labels(severity="critical", topic="Energy | Oil"))
    assert [d.receiver for d in energy] == ["energy-desk"]  # the child handles it; group_wait inherited
    assert energy[0].group_wait == timedelta(seconds=5)
    # continue: true on the critical route lets the next sibling match too; the one after
    # that is not reached because "risk" has continue: false.
    both = route(config, labels(severity="critical", team="risk"))
    assert [d.receiver for d in both] == ["pager", "risk"]
    assert route(config, labels(team="risk"))[0].group_key(labels(team="risk")) == 'route.routes[1]:{"rule": "negative-turn"}'


@pytest.mark.parametrize("text, message", [
    (TREE.replace("group_wait: 1m", "group_wiat: 1m"), "route.group_wiat: unknown key"),
    (TREE.replace("receiver: risk\n", "receiver: rsk\n"), "route.routes[1]: receiver 'rsk' is not defined"),
    (TREE.replace("'team=\"risk\"']\n      receiver: risk\n", "'team=risk\"']\n      receiver: risk\n"),
     None),  # an unbalanced quote is a literal value, not an error
    (TREE.replace('topic=~"Energy.*"', 'topic=~"(Energy"'), "not a regular expression"),
    (TREE.replace("'severity=\"critical\"'", "severity"), "matcher 'severity' is not name=value"),
    (TREE.replace("- {name: default, log: {path: a.jsonl}}", "- {name: default}"),
     "give exactly one of webhook, slack, email, apprise or log"),
    (TREE.replace("http://127.0.0.1:1/x", "ftp://x"), "receivers.1.webhook.url"),
    (TREE.replace("to: [risk@example.org]", "to: [nobody]"), "'nobody' is not an e-mail address"),
    (TREE.replace("  receiver: default\n", "", 1), "the root route needs a receiver"),
    ("route: [", "is not valid YAML"),
])
def test_configuration_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    if message is None:
        load_notify_config(path)
        return
    with pytest.raises(NotifyConfigError) as err:
        load_notify_config(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_a_missing_configuration_file_says_where_it_came_from(tmp_path):
    with pytest.raises(NotifyConfigError, match="does not exist.*MOODWIRE_NOTIFY_CONFIG"):
        load_notify_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, value, hit", [
    ('topic="Macro"', "Macro", True), ("topic=Macro", "Macro", True), ('topic!="Macro"', "Macro", False),
    ('topic=~"Ma.*"', "Macro", True), ('topic=~"acr"', "Macro", False),  # regexes match the whole value
    ('topic!~"Energy.*"', "Macro", True), ("topic = 'Energy | Oil'", "Energy | Oil", True),
])
def test_matchers(text, value, hit):
    assert Matcher.parse(text).matches({"topic": value}) is hit


def test_a_silence_applies_only_between_its_start_and_end():
    t0 = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
    s = Silence("s1", (Matcher.parse('topic="Macro"'),), t0, t0 + timedelta(hours=1))
    assert silenced_by([s], labels(), t0 + timedelta(minutes=5)) is s
    assert silenced_by([s], labels(topic="Earnings"), t0 + timedelta(minutes=5)) is None
    assert silenced_by([s], labels(), t0 - timedelta(seconds=1)) is None
    assert silenced_by([s], labels(), t0 + timedelta(hours=1)) is None
