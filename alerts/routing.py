"""Where alert events go: the notifier's YAML (routing tree, receivers, delivery settings),
matchers and silences — pure, in the spirit of Alertmanager.

```yaml
route:                         # the root matches every event
  receiver: risk-log           # required at the root; children inherit what they omit
  group_by: [rule, topic]      # events with equal values go out in one notification
  group_wait: 30s              # wait this long for more events of a new group
  group_interval: 5m           # then at most one notification per group per interval
  repeat_interval: 4h          # reminders (firing again, same alert) at most this often
  routes:
    - matchers: ['severity="critical"', 'topic=~"^(Macro|Financials)$"']
      receiver: risk-slack
      continue: true           # also try the next sibling routes
receivers:
  - name: risk-slack
    slack: {url: "https://hooks.slack.com/services/..."}
  - name: risk-hook
    webhook: {url: "https://example.org/hook", headers: {X-Team: risk}}
  - name: risk-mail
    email: {to: [risk@example.org], from: moodwire@example.org, host: smtp.example.org, port: 587,
            starttls: true, username: moodwire, password_env: MOODWIRE_SMTP_PASSWORD}
  - name: risk-other
    apprise: {urls: ["mailto://...", "tgram://..."]}   # any service apprise supports
  - name: risk-log
    log: {path: notifications.jsonl}                   # JSON lines, relative to MOODWIRE_HOME
delivery:
  retry_initial: 1s            # first retry after a retryable failure, doubling each time
  retry_max: 5m
  timeout: 10s                 # per HTTP request / SMTP session
```

Matcher syntax: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex`` (values may be
quoted; regexes match the whole value). Names: ``rule``, ``topic``, ``severity``, ``window``,
``kind`` (``topic`` or ``watchlist``), ``watchlist`` (the watchlist's name, empty for a topic)
and the rule's free labels.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moodwire.errors import AlertsError
from moodwire.records import AlertEvent, watchlist_name
from moodwire.spans import parse_duration
from moodwire.yamlfile import read_mapping


class NotifyConfigError(AlertsError):
    """A notifier configuration that cannot be used; the message names the file and the key."""


# --------------------------------------------------------------------------- matchers
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        m = _MATCHER.match(text)
        if not m:
            raise ValueError(f"matcher {text!r} is not name=value, name!=value, name=~regex or name!~regex")
        name, op, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"matcher {text!r}: not a regular expression: {exc}") from None
        return cls(name, op, value)

    def matches(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def labels_of(event: AlertEvent) -> dict[str, str]:
    """What matchers and group_by see of an event: a watchlist's alert has ``kind="watchlist"``,
    ``watchlist`` its name and ``topic`` its key (``watchlist:NAME``); a topic's has
    ``kind="topic"`` and an empty ``watchlist``."""
    watchlist = (watchlist_name(event.topic) or "") if event.kind == "watchlist" else ""
    return {**event.labels, "rule": event.rule, "topic": event.topic, "severity": event.severity,
            "window": event.window, "kind": event.kind, "watchlist": watchlist}


def parse_matchers(texts: list[str]) -> list[Matcher]:
    return [Matcher.parse(t) for t in texts]


def matches_all(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


# --------------------------------------------------------------------------- configuration
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _span_or_none(value: Any) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return parse_duration(str(value))


class Route(_Strict):
    receiver: str | None = None
    matchers: list[str] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None
    repeat_interval: timedelta | None = None
    continue_: bool = Field(False, alias="continue")
    routes: list["Route"] = Field(default_factory=list)

    _spans = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(
        classmethod(lambda cls, v: _span_or_none(v)))

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        parse_matchers(value)
        return value


Route.model_rebuild()


class WebhookReceiver(_Strict):
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)


class SlackReceiver(_Strict):
    url: str = Field(pattern=r"^https?://")
    channel: str | None = None


class EmailReceiver(_Strict):
    to: list[str] = Field(min_length=1)
    from_: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    host: str
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None  # the password is read from this environment variable

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value


class AppriseReceiver(_Strict):
    urls: list[str] = Field(min_length=1)


class LogReceiver(_Strict):
    path: str


class Receiver(_Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    webhook: WebhookReceiver | None = None
    slack: SlackReceiver | None = None
    email: EmailReceiver | None = None
    apprise: AppriseReceiver | None = None
    log: LogReceiver | None = None

    @model_validator(mode="after")
    def _one(self) -> "Receiver":
        kinds = [k for k in ("webhook", "slack", "email", "apprise", "log") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of webhook, slack, email, apprise or log "
                             f"(got {', '.join(kinds) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("webhook", "slack", "email", "apprise", "log") if getattr(self, k) is not None)


class Delivery(_Strict):
    retry_initial: timedelta = timedelta(seconds=1)
    retry_max: timedelta = timedelta(minutes=5)
    timeout: timedelta = timedelta(seconds=10)

    _spans = field_validator("retry_initial", "retry_max", "timeout", mode="before")(
        classmethod(lambda cls, v: _span_or_none(v)))


class NotifyConfig(_Strict):
    route: Route
    receivers: list[Receiver] = Field(min_length=1)
    delivery: Delivery = Field(default_factory=Delivery)

    @model_validator(mode="after")
    def _consistent(self) -> "NotifyConfig":
        names = [r.name for r in self.receivers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"receiver name {name!r} is used twice")
        if self.route.receiver is None:
            raise ValueError("route: the root route needs a receiver (the default for everything)")

        def walk(route: Route, where: str) -> None:
            if route.receiver is not None and route.receiver not in names:
                raise ValueError(f"{where}: receiver {route.receiver!r} is not defined under receivers "
                                 f"(defined: {', '.join(names)})")
            for i, child in enumerate(route.routes):
                walk(child, f"{where}.routes[{i}]")
        walk(self.route, "route")
        return self

    def receiver(self, name: str) -> Receiver:
        return next(r for r in self.receivers if r.name == name)


DEFAULTS = {"group_by": ["rule", "topic"], "group_wait": timedelta(seconds=30),
            "group_interval": timedelta(minutes=5), "repeat_interval": timedelta(hours=4)}


def load_notify_config(path: str | Path) -> NotifyConfig:
    data = read_mapping(path, "notifier configuration", NotifyConfigError, " (from MOODWIRE_NOTIFY_CONFIG)")
    try:
        return NotifyConfig.model_validate(data)
    except ValidationError as exc:
        parts = []
        for error in exc.errors()[:5]:
            key = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-",)))
            key = key.replace("continue_", "continue").replace("from_", "from")
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
            parts.append(f"{key}: {message}" if key else message)
        raise NotifyConfigError(f"notifier configuration {path}: " + "; ".join(parts)) from None


# --------------------------------------------------------------------------- routing
@dataclass(frozen=True)
class Destination:
    """One receiver an event goes to, with the grouping settings of the route that chose it."""

    receiver: str
    route: str  # the route's path, e.g. "route.routes[0]"
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta

    def group_key(self, labels: dict[str, str]) -> str:
        values = {name: labels.get(name, "") for name in self.group_by}
        return f"{self.route}:{json.dumps(values, sort_keys=True, ensure_ascii=False)}"


def route(config: NotifyConfig, labels: dict[str, str]) -> list[Destination]:
    """The receivers for an event's labels, Alertmanager style: depth first; the deepest
    matching route handles the event; ``continue`` lets the next siblings match too."""

    def settings(node: Route, inherited: dict) -> dict:
        out = dict(inherited)
        for key in ("receiver", "group_by", "group_wait", "group_interval", "repeat_interval"):
            if getattr(node, key) is not None:
                out[key] = getattr(node, key)
        return out

    def visit(node: Route, path: str, inherited: dict) -> list[Destination]:
        if not matches_all(parse_matchers(node.matchers), labels):
            return []
        mine = settings(node, inherited)
        found: list[Destination] = []
        for i, child in enumerate(node.routes):
            hit = visit(child, f"{path}.routes[{i}]", mine)
            found += hit
            if hit and not child.continue_:
                break
        if found:
            return found
        return [Destination(mine["receiver"], path, tuple(mine["group_by"]), mine["group_wait"],
                            mine["group_interval"], mine["repeat_interval"])]

    seen, out = set(), []
    for d in visit(config.route, "route", dict(DEFAULTS)):
        if d.receiver not in seen:  # one copy per receiver even if two routes pick it
            seen.add(d.receiver)
            out.append(d)
    return out


# --------------------------------------------------------------------------- silences
@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def silences(self, labels: dict[str, str], now: datetime) -> bool:
        return self.active(now) and matches_all(list(self.matchers), labels)


def silenced_by(silences: list[Silence], labels: dict[str, str], now: datetime) -> Silence | None:
    return next((s for s in silences if s.silences(labels, now)), None)


def idempotency_key(receiver: str, items: list[tuple[str, int]]) -> str:
    """Stable for one notification's content: the receiver and its (fingerprint, seq) pairs."""
    text = receiver + "|" + ",".join(f"{f}:{s}" for f, s in sorted(items))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


__all__ = ["Matcher", "NotifyConfig", "NotifyConfigError", "Receiver", "Route", "Destination", "Silence",
           "load_notify_config", "route", "labels_of", "parse_matchers", "silenced_by", "idempotency_key"]
