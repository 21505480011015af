"""One final window through every rule: the evaluation both the aggregate worker's alert agent
(``streams/aggregate/alerting.py``) and ``moodwire backtest`` run, over a key/value state.

State per (rule, key): the alert's state machine (``alerts.evaluate``), the trailing baseline of
final windows, and the highest window offset applied (a window applied before a crash is not
applied again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from alerts.evaluate import baseline_of, new_state, read, step, step_early
from alerts.rules import Rule
from moodwire.records import AlertEvent, Evidence, TopicWindow

SEP = "\x1f"


def state_key(rule: Rule, topic: str) -> str:
    return f"{rule.name}{SEP}{topic}"


def evidence_for(rule: Rule, window: TopicWindow, k: int = 5) -> list[Evidence]:
    """The headlines that moved the value most: the most negative items for a downward rule,
    the most positive for an upward one, the most extreme either way for a volume spike."""
    kind = rule.when.kind
    negative_ids, positive_ids = set(window.most_negative), set(window.most_positive)
    unique = list({e.id: e for e in window.evidence}.values())
    if kind in ("mean_below", "negative_share_above", "negative_count") or (kind == "shift" and rule.when.shift.below is not None):
        chosen = [e for e in unique if e.id in negative_ids]
        return sorted(chosen, key=lambda e: (e.score, e.id))[:k]
    if kind in ("mean_above",) or kind == "shift":
        chosen = [e for e in unique if e.id in positive_ids]
        return sorted(chosen, key=lambda e: (-e.score, e.id))[:k]
    return sorted(unique, key=lambda e: (-abs(e.score), e.id))[:k]


def fold_window(rules: Sequence[Rule], state: Mapping[str, dict], writes: dict[str, dict], window: TopicWindow,
                offset: int, partition: int = 0) -> list[AlertEvent]:
    """Apply one window (at ``offset`` of its partition) to every rule that selects it: a final
    window to every such rule, a partial one to the rules judged early (``Rule.judged_early``).
    Reads ``writes`` before ``state`` and puts each changed (rule, key) state into ``writes``;
    returns the alert events, in rule order."""
    out: list[AlertEvent] = []
    for rule in rules:
        if not _judges(rule, window):
            continue
        key = state_key(rule, window.topic)
        stored = writes.get(key) or state.get(key) or {"alert": new_state(), "history": [], "offset": -1}
        if offset <= stored["offset"]:
            continue  # applied before a crash
        alert, events = stored["alert"], []
        if rule.judged_early:
            alert, events = step_early(rule, window.topic, alert, window)
        if not window.final:  # a partial window: only an early firing (or the wait it sets) is recorded
            if alert != stored["alert"]:
                out += events
                writes[key] = {**stored, "alert": alert, "offset": offset, "partition": partition}
            continue
        reading = read(rule, window, baseline_of(stored["history"], window, rule.baseline))
        alert, later = step(rule, window.topic, alert, window, reading, evidence_for(rule, window))
        events += later
        out += events
        writes[key] = {"alert": alert, "history": remember(stored["history"], window, rule),
                       "offset": offset, "partition": partition}
    return out


def uncounted_rules(rules: Sequence[Rule], window: TopicWindow) -> list[Rule]:
    """The ``negative_count`` rules that judge ``window`` but cannot: it does not count its
    items below the cutoffs (``alerts.evaluate.uncounted`` says why)."""
    if window.strong is not None:
        return []
    return [r for r in rules if r.counts_headlines and _judges(r, window)]


def _judges(rule: Rule, window: TopicWindow) -> bool:
    """Whether ``rule`` judges ``window``: its window and key, and final unless judged early."""
    return (rule.window == window.window and rule.selects(window.topic)
            and (window.final or rule.judged_early))


def remember(history: list[dict], window: TopicWindow, rule: Rule) -> list[dict]:
    """The trailing baseline: final windows of the last ``baseline`` span, one per start."""
    keep_from = window.start - rule.baseline
    kept = [h for h in history if h["start"] != window.start.isoformat()
            and datetime.fromisoformat(h["start"]) >= keep_from]
    kept.append({"start": window.start.isoformat(), "count": window.count, "mean": window.mean_score})
    return sorted(kept, key=lambda h: h["start"])


__all__ = ["fold_window", "evidence_for", "remember", "state_key", "uncounted_rules", "SEP"]
