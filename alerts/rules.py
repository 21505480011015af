"""Alert rules: the YAML schema, validated at start-up with errors that name the file, the rule
and the key (in the spirit of Prometheus alerting rules).

```yaml
rules:
  - name: negative-turn            # unique; part of the alert fingerprint
    topics: all                    # all | [Earnings, Macro] | {pattern: "^Energy"}
                                   #   (default: all, or none when the rule names watchlists)
    watchlists: [US regional banks] # all | [names] | {pattern: "bank"} (moodwire/watchlists.py)
    window: 1h                     # a window the aggregator emits (MOODWIRE_AGGREGATE_WINDOWS)
    when: {mean_below: -0.3}       # one of: mean_below, mean_above, negative_share_above,
                                   #   volume_spike {z: 3} | {ratio: 4}, shift {below: -0.4} | {above: 0.4},
                                   #   negative_count {at_least: 3, score_below: -0.7} (at most 5;
                                   #   below one of -0.5 … -0.9; with for: 0s it fires as the
                                   #   headline arrives)
    baseline: 24h                  # trailing baseline for volume_spike and shift (default 24h)
    min_count: 5                   # fewer items in the window: the condition does not hold
    for: 10m                       # hold this long (event time) before firing
    recover: -0.1                  # hysteresis: resolve only once the value is back past this
    keep_firing_for: 15m           # ... and has stayed there this long
    no_data: keep_state            # keep_state | resolve: a firing alert whose windows hold fewer than
    no_data_timeout: 6h            #   min_count items keeps firing this long, then resolves "no data"
    repeat_interval: 4h            # reminders while firing
    severity: critical             # info | warning | critical
    labels: {team: credit-risk}
```
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moodwire.errors import RuleError
from moodwire.records import LADDER, watchlist_name
from moodwire.spans import parse_span, parse_span_or_zero
from moodwire.yamlfile import describe_error, read_mapping

Kind = Literal["mean_below", "mean_above", "negative_share_above", "volume_spike", "shift", "negative_count"]
EVIDENCE_K = 5  # a window keeps its 5 most negative headlines (streams/aggregate/windows.py)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TopicPattern(_Strict):
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class Spike(_Strict):
    z: float | None = Field(None, gt=0)
    ratio: float | None = Field(None, gt=1)

    @model_validator(mode="after")
    def _one(self) -> "Spike":
        if (self.z is None) == (self.ratio is None):
            raise ValueError("give exactly one of z (standard deviations) or ratio (times the baseline)")
        return self


class Shift(_Strict):
    below: float | None = Field(None, lt=0, ge=-2)
    above: float | None = Field(None, gt=0, le=2)

    @model_validator(mode="after")
    def _one(self) -> "Shift":
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below (a negative change) or above (a positive change)")
        return self


class NegativeCount(_Strict):
    """At least ``at_least`` headlines in the window scored below ``score_below``: a narrow key's
    first strongly negative headlines, before a mean over many can move. Every window counts
    its items below each cutoff of ``LADDER`` exactly and keeps the earliest 5, so
    ``score_below`` is one of those cutoffs and ``at_least`` at most 5; with ``for: 0s`` the
    rule fires as the headline that makes the count arrives (alerts/evaluate.py)."""
    at_least: int = Field(ge=1, le=EVIDENCE_K)
    score_below: float

    @field_validator("score_below")
    @classmethod
    def _on_ladder(cls, value: float) -> float:
        if not any(math.isclose(value, cut) for cut in LADDER):
            raise ValueError(f"score_below must be one of {', '.join(f'{c:g}' for c in LADDER)} "
                             f"(the cutoffs every window counts), not {value:g}")
        return next(cut for cut in LADDER if math.isclose(value, cut))


class Condition(_Strict):
    mean_below: float | None = Field(None, ge=-1, le=1)
    mean_above: float | None = Field(None, ge=-1, le=1)
    negative_share_above: float | None = Field(None, ge=0, le=1)
    volume_spike: Spike | None = None
    shift: Shift | None = None
    negative_count: NegativeCount | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Condition":
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one condition: mean_below, mean_above, negative_share_above, "
                             f"volume_spike, shift or negative_count (got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> Kind:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)  # type: ignore[return-value]


def _span(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_span(str(value))


class Rule(_Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str = ""
    topics: Literal["all"] | list[str] | TopicPattern | None = None
    watchlists: Literal["all"] | list[str] | TopicPattern | None = None
    window: str
    when: Condition
    baseline: timedelta = timedelta(hours=24)
    min_count: int = Field(1, ge=1)
    for_: timedelta = Field(timedelta(0), alias="for")
    recover: float | None = None
    keep_firing_for: timedelta = timedelta(0)
    no_data: Literal["keep_state", "resolve"] = "keep_state"
    no_data_timeout: timedelta = timedelta(hours=6)
    repeat_interval: timedelta = timedelta(hours=4)
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)

    _spans = field_validator("baseline", "no_data_timeout", "repeat_interval", mode="before")(
        classmethod(lambda cls, v: _span(v)))
    # 0s is meaningful here: fire at once, resolve at once (the defaults)
    _holds = field_validator("for_", "keep_firing_for", mode="before")(
        classmethod(lambda cls, v: v if isinstance(v, timedelta) else parse_span_or_zero(v)))

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_span(value)
        return value

    @model_validator(mode="after")
    def _recover_side(self) -> "Rule":
        kind, threshold = self.when.kind, self.threshold
        if self.recover is not None and kind in ("mean_below", "mean_above", "negative_share_above"):
            wrong = self.recover < threshold if kind == "mean_below" else self.recover > threshold
            if wrong:
                side = "above" if kind == "mean_below" else "below"
                raise ValueError(f"recover ({self.recover}) must be {side} the threshold ({threshold}), "
                                 "or the alert could never resolve")
        if kind == "negative_count" and self.recover is not None and not 0 <= self.recover < threshold:
            raise ValueError(f"recover ({self.recover:g}) must be a count from 0 to {threshold - 1:g}: the alert "
                             "resolves once at most that many headlines stay below score_below")
        if self.baseline <= parse_span(self.window) and kind in ("volume_spike", "shift"):
            raise ValueError(f"baseline ({self.baseline}) must be longer than the window ({self.window})")
        return self

    @property
    def counts_headlines(self) -> bool:
        """Whether the rule's value is a number of headlines (``negative_count``), not a mean."""
        return self.when.kind == "negative_count"

    @property
    def judged_early(self) -> bool:
        """Fires as the headline that makes its condition hold arrives, not once the window is
        complete: a count of strongly negative headlines only grows while its window fills, so
        what holds early still holds at the end. Not with a ``min_count`` above ``at_least``:
        when the window reached that many items is not kept."""
        c = self.when.negative_count
        return c is not None and self.for_ == timedelta(0) and self.min_count <= c.at_least

    @property
    def threshold(self) -> float:
        c = self.when
        if c.volume_spike is not None:
            return c.volume_spike.z if c.volume_spike.z is not None else c.volume_spike.ratio  # type: ignore[return-value]
        if c.shift is not None:
            return c.shift.below if c.shift.below is not None else c.shift.above  # type: ignore[return-value]
        if c.negative_count is not None:
            return float(c.negative_count.at_least)
        return getattr(c, c.kind)

    def selects(self, key: str) -> bool:
        """Whether the rule judges the windows of ``key`` (a topic, or ``watchlist:NAME``)."""
        name = watchlist_name(key)
        if name is not None:
            return _chosen(self.watchlists, name)
        return _chosen(self.topics if self.topics is not None or self.watchlists is not None else "all", key)


def _chosen(selector, name: str) -> bool:
    if selector is None:
        return False
    if selector == "all":
        return True
    if isinstance(selector, TopicPattern):
        return re.search(selector.pattern, name) is not None
    return name in selector


class RuleFile(_Strict):
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "RuleFile":
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


def load_rules(path: str | Path, windows: list[str] | None = None) -> list[Rule]:
    """The rules in ``path``; RuleError naming the file, the rule and the key otherwise.
    ``windows``: the window names the aggregator emits (a rule on another window never fires)."""
    data = read_mapping(path, "alert rules file", RuleError, " (from MOODWIRE_ALERT_RULES)")
    try:
        rules = RuleFile.model_validate(data).rules
    except ValidationError as exc:
        raise RuleError(f"alert rules file {path}: " + "; ".join(
            describe_error(e, data, "rules", "rule", {"for_": "for"}) for e in exc.errors()[:5])) from None
    if windows is not None:
        for rule in rules:
            if rule.window not in windows:
                raise RuleError(f"alert rules file {path}: rule {rule.name!r}: window: {rule.window!r} is not "
                                f"aggregated (MOODWIRE_AGGREGATE_WINDOWS has {', '.join(windows)})")
    return rules


def ladder_windows(rules: list[Rule]) -> set[str]:
    """The windows whose items below each score cutoff must be counted: those a
    ``negative_count`` rule judges (``streams.aggregate.fold.Aggregator``'s ``ladder``)."""
    return {rule.window for rule in rules if rule.counts_headlines}


__all__ = ["Rule", "RuleFile", "Condition", "load_rules", "ladder_windows"]
