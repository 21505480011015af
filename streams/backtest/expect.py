"""Rule-test files for ``moodwire backtest --expect``, in the spirit of ``promtool test rules``.

```yaml
expect:
  - name: the bank run is caught          # optional; printed with the result
    rule: negative-shift                  # the rule's name, or any (every rule of the file)
    key: Financials                       # optional: one topic or watchlist (default: any)
    between: [2023-03-09T00:00Z, 2023-03-14T00:00Z]
    min_alerts: 1                         # at least this many alerts start in [from, to)
    by: 2023-03-10T10:00Z                 # optional: and the first of them no later than this
  - rule: negative-shift
    between: [2023-02-15, 2023-03-06]
    max_alerts: 3                         # at most this many (0: the rule stays quiet)
```

An alert counts once per firing episode (its fingerprint and start), by when it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moodwire.records import AlertEvent, key_label
from moodwire.yamlfile import read_mapping
from moodwire.errors import BacktestError


def _instant(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


ANY = "any"  # an expectation over every rule's alerts


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    rule: str = Field(min_length=1)
    key: str | None = None
    between: tuple[datetime, datetime]
    min_alerts: int | None = Field(None, ge=1)
    max_alerts: int | None = Field(None, ge=0)
    by: datetime | None = None  # the first alert in the interval starts no later than this

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, value):
        return None if value is None else _instant(value)

    @field_validator("between", mode="before")
    @classmethod
    def _times(cls, value):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError("give [from, to] as two ISO 8601 times")
        return tuple(_instant(v) for v in value)

    @model_validator(mode="after")
    def _bounds(self) -> "Expectation":
        if self.min_alerts is None and self.max_alerts is None and self.by is None:
            raise ValueError("give min_alerts, max_alerts, by, or more than one")
        if self.between[0] >= self.between[1]:
            raise ValueError("between: from must be before to")
        if self.by is not None and not self.between[0] <= self.by <= self.between[1]:
            raise ValueError("by: must lie within between")
        if self.by is not None and self.max_alerts == 0:
            raise ValueError("by: needs an alert; max_alerts 0 wants none")
        return self

    def wanted(self) -> str:
        """What the expectation asks for: "at least 1 alert(s)", "an alert(s), the first by …"."""
        bounds = []
        if self.min_alerts is not None:
            bounds.append(f"at least {self.min_alerts}")
        if self.max_alerts is not None:
            bounds.append(f"at most {self.max_alerts}")
        by = f", the first by {self.by.isoformat()}" if self.by is not None else ""
        return f"{' and '.join(bounds) or 'an'} alert(s){by}"

    def describe(self) -> str:
        where = f" on {key_label(self.key)}" if self.key else ""
        who, verb = ("the rules together", "start") if self.rule == ANY else (f"rule {self.rule}", "starts")
        wanted, _, by = self.wanted().partition(", the first by")
        return (f"{self.name + ': ' if self.name else ''}{who}{where} {verb} {wanted} in "
                f"[{self.between[0].isoformat()}, {self.between[1].isoformat()})" + (f", the first by{by}" if by else ""))


class ExpectFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    expect: list[Expectation] = Field(min_length=1)


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    found: int
    passed: bool
    starts: list[str]
    why: str = ""

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        if self.why:
            return f"{verdict}: {self.expectation.describe()} — {self.why}"
        seen = f"; starts: {', '.join(self.starts[:5])}" + (" …" if len(self.starts) > 5 else "") if self.starts else ""
        return f"{verdict}: {self.expectation.describe()} — found {self.found}{seen}"


def load_expectations(path: str | Path, rule_names: Sequence[str]) -> list[Expectation]:
    data = read_mapping(path, "expectations file", BacktestError, "")
    try:
        expectations = ExpectFile.model_validate(data).expect
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BacktestError(f"expectations file {path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    for i, e in enumerate(expectations, 1):
        if e.rule != ANY and e.rule not in rule_names:
            raise BacktestError(f"expectations file {path}: expectation #{i}: rule {e.rule!r} is not in the rules "
                                f"file (rules: {', '.join(rule_names)})")
    return expectations


def check(expectations: Sequence[Expectation], alerts: Sequence[AlertEvent],
          news_times: Sequence[datetime] = ()) -> list[Outcome]:
    """Each expectation against the alerts. With ``news_times`` (when the file's items were
    published, sorted), an interval the file has no news in fails: "stays quiet" over weeks the
    file does not cover proves nothing."""
    from bisect import bisect_left

    episodes = {(a.fingerprint, a.starts_at): a for a in alerts if a.status == "firing"}
    out = []
    for e in expectations:
        if news_times and bisect_left(news_times, e.between[1]) == bisect_left(news_times, e.between[0]):
            out.append(Outcome(e, 0, False, [], f"the news file has no item in this interval (it runs "
                                                f"{news_times[0]:%Y-%m-%d %H:%M} … {news_times[-1]:%Y-%m-%d %H:%M} "
                                                "UTC): nothing to judge"))
            continue
        starts = sorted(start for (_, start), a in episodes.items()
                        if e.rule in (ANY, a.rule) and (e.key is None or a.topic == e.key)
                        and e.between[0] <= start < e.between[1])
        found = len(starts)
        passed = (e.min_alerts is None or found >= e.min_alerts) and (e.max_alerts is None or found <= e.max_alerts)
        if e.by is not None and not (starts and starts[0] <= e.by):
            passed = False
        out.append(Outcome(e, found, passed, [s.strftime("%Y-%m-%d %H:%M") for s in starts]))
    return out
