"""Pure rule evaluation over window aggregates and the alert state machine.

Time is event time: a window's ``end``. Replaying the same windows gives the same alerts,
whatever the wall clock says. The state of one alert (one rule on one topic) is a small
JSON-able dict kept by the caller in a changelog-backed table:

    inactive ──condition holds──► pending ──held for `for`──► firing ──cleared for
       ▲                            │ condition fails                keep_firing_for──► resolved
       └────────────────────────────┘                                   (then inactive again)

No data (a window with fewer than ``min_count`` items) is not a recovery. A firing alert whose
thin window still reads past the threshold (the few items there say the same) keeps firing,
whatever ``no_data`` says: too few to start an alert is not evidence that it is over. Otherwise,
with the rule's ``no_data: keep_state`` (the default, as Grafana's "keep last state") a firing
alert stays firing while its windows hold too few items, for at most ``no_data_timeout``; then
it resolves with the reason "no data …". With ``no_data: resolve`` it resolves at once, saying
why. A pending or inactive alert treats no data as the condition not holding.

Every transition to firing or resolved (and a reminder every ``repeat_interval`` while
firing) yields one ``AlertEvent`` with the alert's stable fingerprint and the next sequence
number.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.rules import Rule
from moodwire.records import WATCHLIST_KEY, AlertEvent, Evidence, TopicWindow
from moodwire.spans import format_span

INACTIVE, PENDING, FIRING = "inactive", "pending", "firing"
MIN_BASELINE = 3  # windows needed before volume_spike / shift can hold


def fingerprint(rule: Rule, topic: str) -> str:
    """Stable for one rule on one topic (Alertmanager-style: a hash of the identifying labels)."""
    return hashlib.sha256(f"{rule.name}\x1f{topic}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Reading:
    """The rule's value for one window and whether its condition holds."""

    value: float
    holds: bool
    recovered: bool  # past the recovery threshold (hysteresis); equals ``not holds`` without one
    why: str | None = None  # why the rule cannot judge this window (a firing alert then resolves)
    no_data: bool = False  # fewer than min_count items, not past the threshold: says nothing either way


def baseline_of(history: Sequence[dict], window: TopicWindow, span: timedelta) -> list[dict]:
    """Earlier windows (``{"start", "count", "mean"}``, start as ISO text) that end at or
    before this window's start and start within ``span`` before it."""
    lo = window.start - span
    out = []
    for h in history:
        start = datetime.fromisoformat(h["start"])
        if start >= lo and start + (window.end - window.start) <= window.start:
            out.append(h)
    return out


def read(rule: Rule, window: TopicWindow, baseline: Sequence[dict]) -> Reading:
    c = rule.when
    kind = c.kind
    enough = window.count >= rule.min_count
    if kind in ("mean_below", "mean_above", "negative_share_above"):
        value = window.negative_share if kind == "negative_share_above" else window.mean_score
        threshold = rule.threshold
        holds = value < threshold if kind == "mean_below" else value > threshold
        if rule.recover is None:
            recovered = not holds
        else:
            recovered = value >= rule.recover if kind == "mean_below" else value <= rule.recover
        return _reading(rule, window, value, holds, recovered, enough)
    if kind == "negative_count":
        if window.strong is None:
            return Reading(0.0, False, True, uncounted(rule, window))
        value = float(_strong(window, c.negative_count.score_below)[0])
        holds = value >= rule.threshold
        recovered = value <= rule.recover if rule.recover is not None else not holds
        return _reading(rule, window, value, holds, recovered, enough)
    if len(baseline) < MIN_BASELINE:
        return Reading(0.0, False, True, f"baseline of {len(baseline)} earlier windows, {MIN_BASELINE} needed")
    if kind == "volume_spike":
        counts = [h["count"] for h in baseline]
        mu = statistics.fmean(counts)
        if c.volume_spike.ratio is not None:
            value = window.count / max(mu, 1.0)
        else:
            sigma = statistics.pstdev(counts)
            value = (window.count - mu) / sigma if sigma > 0 else (math.inf if window.count > mu else 0.0)
            value = min(value, 1e6)
        holds = value > rule.threshold
        recovered = (value <= rule.recover) if rule.recover is not None else not holds
        return _reading(rule, window, value, holds, recovered, enough)
    # shift: the window's mean against the count-weighted mean of the baseline windows
    total = sum(h["count"] for h in baseline)
    base_mean = sum(h["mean"] * h["count"] for h in baseline) / total if total else 0.0
    value = window.mean_score - base_mean
    below = c.shift.below is not None
    holds = value < rule.threshold if below else value > rule.threshold
    if rule.recover is None:
        recovered = not holds
    else:
        recovered = value >= rule.recover if below else value <= rule.recover
    return _reading(rule, window, value, holds, recovered, enough)


def uncounted(rule: Rule, window: TopicWindow) -> str:
    """Why a ``negative_count`` rule cannot judge a window that does not count its items below
    the cutoffs (``TopicWindow.strong`` None): judging it would count short. (Rule and key are
    the alert's own; the text fits ``AlertEvent.reason``.)"""
    return (f"the {window.window} window from {window.start.isoformat()} holds items aggregated while no "
            f"negative_count rule named {window.window} windows (rules added since, or a worker without them): "
            "not judged until those items leave the window; every aggregate worker needs the same "
            "MOODWIRE_ALERT_RULES")


def _strong(window: TopicWindow, below: float) -> tuple[int, list[Evidence]]:
    """How many of the window's items score below the cutoff, and the earliest of them (none
    when the window does not count them: ``read`` refuses such a window)."""
    found = next((s for s in window.strong or () if math.isclose(s.below, below)), None)
    return (0, []) if found is None else (found.count, found.first)


def held_since(rule: Rule, window: TopicWindow) -> tuple[datetime, list[Evidence]] | None:
    """For a rule judged early: the publish time at which ``window``'s condition began to hold
    (its ``at_least``-th headline below the cutoff, by publish time) and those headlines; None
    while it does not hold. A function of the window's content, not of the order the
    headlines arrived in: the partial window that first holds and the final window give the
    same answer when the headlines came in publish order (of headlines published in the same
    second, a partial window may show others than the final one would)."""
    c = rule.when.negative_count
    count, first = _strong(window, c.score_below)
    if count < c.at_least or len(first) < c.at_least:  # (min_count ≤ at_least: Rule.judged_early)
        return None
    first = first[:c.at_least]
    return first[-1].published_at, first


def step_early(rule: Rule, topic: str, state: dict, window: TopicWindow) -> tuple[dict, list[AlertEvent]]:
    """Fire a rule judged early (``Rule.judged_early``) on a window, partial or final, whose
    condition holds, as of the publish time it began to hold. Only fires: resolving, reminders
    and no data stay with the final windows (``step``).

    A partial window that holds while the alert fires is remembered (``early_wait``, its end):
    once the alert resolves, that window, when final, may start the next episode, earlier than
    any later partial. So until the final windows have reached it, partials do not fire and the
    next episode starts as the back-test's does."""
    held = held_since(rule, window)
    if held is None:
        return state, []
    if state["status"] == FIRING:
        if not window.final:  # its final window may start the next episode: partials wait for it
            wait = _t(state.get("early_wait"))
            state = dict(state, early_wait=max(wait, window.end).isoformat() if wait else window.end.isoformat())
        return state, []
    wait, last = _t(state.get("early_wait")), _t(state["last_end"])
    if not window.final and wait is not None and (last is None or last < wait):
        return state, []  # a window that held while the alert fired is not final yet: it may start first
    since, evidence = held
    state = dict(state, status=FIRING, since=since.isoformat(), starts_at=since.isoformat(), clear_since=None,
                 seq=state["seq"] + 1, last_event=since.isoformat(), value=float(len(evidence)))
    return state, [AlertEvent(
        fingerprint=fingerprint(rule, topic), rule=rule.name, topic=topic, status="firing", value=len(evidence),
        threshold=rule.threshold, window=rule.window, starts_at=since, evidence=evidence, seq=state["seq"],
        severity=rule.severity, labels=dict(rule.labels),
        kind="watchlist" if topic.startswith(WATCHLIST_KEY) else "topic", window_start=window.start,
        window_end=window.end)]


def _reading(rule: Rule, window: TopicWindow, value: float, holds: bool, recovered: bool, enough: bool) -> Reading:
    """Too few items never start an alert (``holds`` needs min_count); a thin window still past
    the threshold is neither no data nor a recovery, so a firing alert goes on through it."""
    thin = not enough and not holds
    return Reading(value, enough and holds, recovered or thin, _unjudged(rule, window, recovered, enough),
                   no_data=thin)


def _unjudged(rule: Rule, window: TopicWindow, recovered: bool, enough: bool) -> str | None:
    """Said on a resolution that comes from too few items, not from the value recovering."""
    if enough or recovered:
        return None
    return f"{window.count} items in the window, under min_count {rule.min_count}: not judged"


def new_state() -> dict:
    return {"status": INACTIVE, "since": None, "clear_since": None, "starts_at": None, "seq": 0,
            "last_event": None, "last_end": None, "value": None, "no_data_since": None}


def step(rule: Rule, topic: str, state: dict, window: TopicWindow, reading: Reading,
         evidence: Sequence[Evidence] = ()) -> tuple[dict, list[AlertEvent]]:
    """Advance one alert by one window (event time ``window.end``); returns the new state and
    the events to send. Windows older than the last one seen are ignored."""
    state = dict(state)
    now = window.end
    last = _t(state["last_end"])
    if last is not None and now < last:
        return state, []
    if state["status"] == FIRING and now <= _t(state["starts_at"]):
        return state, []  # a window that ended before an early firing began says nothing of it
    state["last_end"] = now.isoformat()
    state["value"] = reading.value
    events: list[AlertEvent] = []

    def emit(status: str, ends_at: datetime | None = None, reason: str | None = None) -> None:
        state["seq"] += 1
        state["last_event"] = now.isoformat()
        events.append(AlertEvent(
            fingerprint=fingerprint(rule, topic), rule=rule.name, topic=topic, status=status,
            value=reading.value, threshold=rule.threshold, window=rule.window,
            starts_at=_t(state["starts_at"]), ends_at=ends_at, evidence=list(evidence), seq=state["seq"],
            severity=rule.severity, labels=dict(rule.labels), reason=reason,
            kind="watchlist" if topic.startswith(WATCHLIST_KEY) else "topic", window_start=window.start,
            window_end=window.end))

    status = state["status"]
    if status in (INACTIVE, PENDING):
        if not reading.holds:
            state.update(status=INACTIVE, since=None)
            return state, []
        since = _t(state["since"]) or now
        state.update(status=PENDING, since=since.isoformat())
        if now - since >= rule.for_:
            state.update(status=FIRING, starts_at=since.isoformat(), clear_since=None)
            emit("firing")
        return state, events

    # firing
    if reading.no_data and rule.no_data == "keep_state":
        no_data_since = _t(state.get("no_data_since")) or now
        state["no_data_since"] = no_data_since.isoformat()
        if now - no_data_since >= rule.no_data_timeout:
            emit("resolved", ends_at=now, reason=(
                f"no data: fewer than min_count {rule.min_count} items per {rule.window} window since "
                f"{no_data_since.isoformat()} ({format_span(rule.no_data_timeout)} or more)"))
            state.update(status=INACTIVE, since=None, clear_since=None, starts_at=None, no_data_since=None)
        return state, events
    state["no_data_since"] = None
    if reading.recovered:
        clear_since = _t(state["clear_since"]) or now
        state["clear_since"] = clear_since.isoformat()
        if now - clear_since >= rule.keep_firing_for:
            emit("resolved", ends_at=now, reason=reading.why)
            state.update(status=INACTIVE, since=None, clear_since=None, starts_at=None)
        return state, events
    state["clear_since"] = None
    if now - _t(state["last_event"]) >= rule.repeat_interval:
        emit("firing")  # reminder: same starts_at, next seq
    return state, events


def _t(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


__all__ = ["Reading", "read", "step", "step_early", "held_since", "uncounted", "new_state", "fingerprint", "baseline_of", "INACTIVE", "PENDING", "FIRING"]
