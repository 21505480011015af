"""The dashboard's store access: small query functions returning data frames, and the two
writes analysts make (acknowledge, silence). No Dash here; no I/O at import time."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy import Text, and_, cast, func, insert, select
from sqlalchemy.engine import Engine

from moodwire.records import WATCHLIST_KEY
from moodwire.spans import WindowSpec, parse_windows
from moodwire.store import (alert_acks, alert_events, as_utc, notify_outbox, scored_news, silences,
                            topic_windows)

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
WATCHLIST = WATCHLIST_KEY
DEFAULT_WINDOWS = parse_windows("5m,1h/5m,24h/1h")  # MOODWIRE_AGGREGATE_WINDOWS' default
MAX_POINTS = 300  # the most points a series of one key carries, whatever the range
COUNTING_ROWS = 3000  # the most windows per key a range's item count sums (``counting``)
# The columns a chart or table reads (the evidence lists are not shown: never selected).
SERIES = ("topic", "window", "start", "end", "count", "mean_score", "sum_sq", "negative_share", "late_count", "kind")
OVERVIEW = ("topic", "start", "end", "count", "mean_score", "negative_share", "final")  # the overview's table and heat map


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, name: str | None, start: str | None = None, end: str | None = None,
              now: datetime | None = None) -> "TimeRange":
        now = now or datetime.now(timezone.utc)
        if name == "custom" and custom_problem(start, end) is None:
            return cls(parse_when(start), parse_when(end))
        return cls(now - RANGES.get(name or "24h", RANGES["24h"]), now)


def custom_problem(start: str | None, end: str | None) -> str | None:
    """Why a custom range's start and end cannot be read (the range is then the last 24 h), or None."""
    if not start or not end:
        return "give both a start and an end (ISO, UTC, such as 2023-03-09T00:00)"
    for name, text in (("start", start), ("end", end)):
        if parse_when(text) is None:
            return f"the {name} {text!r} is not an ISO time (such as 2023-03-09T00:00)"
    if parse_when(start) >= parse_when(end):
        return "the start must come before the end"
    return None


def parse_when(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        return None
    # compared in UTC: SQLite compares the stored UTC text, so an offset kept here shifted the range
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _frame(result) -> pd.DataFrame:
    """A query's rows as a data frame, built from the row tuples (a dict per row costs more than
    the query on a large range)."""
    keys = list(result.keys())
    return pd.DataFrame([tuple(row) for row in result.fetchall()], columns=keys)


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for c in columns:
        if c in frame:
            frame[c] = pd.to_datetime(frame[c], utc=True, format="ISO8601")
    return frame


@dataclass(frozen=True)
class Resolution:
    """Which windows a chart of a range draws: windows named ``window`` starting every
    ``spacing`` (a multiple of the window's step, aligned to the epoch)."""
    window: str
    spacing: timedelta

    def starts(self, rng: TimeRange) -> list[datetime]:
        """The window starts in ``[rng.start, rng.end)``: at most ``MAX_POINTS`` (+1)."""
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        step = self.spacing.total_seconds()
        first = math.ceil((rng.start - epoch).total_seconds() / step)
        last = math.ceil((rng.end - epoch).total_seconds() / step)
        return [epoch + timedelta(seconds=i * step) for i in range(first, last)]


def resolution(rng: TimeRange, specs: list[WindowSpec] | None = None) -> Resolution:
    """The resolution of a range, as Grafana's max data points: the shortest configured window
    at least 1/200 of the range long (enough items per point; the longest when none is), spaced
    by its own span (windows side by side, never overlapping: a headline is in one point and
    one volume bar, not in every sliding window that holds it), or wider where that would make
    a series longer than ``MAX_POINTS`` points."""
    specs = sorted(specs or DEFAULT_WINDOWS, key=lambda w: (w.span, w.step))
    length = rng.end - rng.start
    spec = next((w for w in specs if w.span >= length / 200), specs[-1])
    steps = max(1, math.ceil((length / MAX_POINTS) / spec.step), math.ceil(spec.span / spec.step))
    return Resolution(spec.name, spec.step * steps)


def windows(engine: Engine, window: str, rng: TimeRange, topic: str | None = None,
            starts: list[datetime] | None = None, columns: tuple[str, ...] = SERIES) -> pd.DataFrame:
    """Window aggregates of one size whose start lies in the range (only those at ``starts``
    when given), one row per (key, start): ``columns`` only, never the evidence lists."""
    with engine.connect() as conn:
        frame = _frame(conn.execute(windows_query(window, rng, topic, starts, columns, dialect=engine.dialect.name)))
    if frame.empty:
        return pd.DataFrame(columns=list(columns))
    return _utc(frame, "start", "end").sort_values(["topic", "start"], ignore_index=True)


def windows_query(window: str, rng: TimeRange, topic: str | None = None, starts: list[datetime] | None = None,
                  columns: tuple[str, ...] = SERIES, *, dialect: str):
    c = topic_windows.c
    # Times as text (SQLite: the stored text; PostgreSQL: ISO with an offset), parsed in one
    # vectorised pass (``_utc``): a driver's or SQLAlchemy's per-value conversion costs more than
    # the query on a long range.
    picked = [cast(c[name], Text).label(name) if name in ("start", "end") else c[name] for name in columns]
    q = select(*picked).where(c.window == window)
    q = q.where(*_at(starts, dialect)) if starts is not None else q.where(c.start >= rng.start, c.start < rng.end)
    if topic is not None:
        return q.where(c.topic == topic).order_by(c.start)
    return q  # sorted by the caller: ORDER BY topic, start made SQLite skip-scan the primary key


def series(engine: Engine, rng: TimeRange, specs: list[WindowSpec] | None = None,
           topic: str | None = None, columns: tuple[str, ...] = SERIES) -> tuple[pd.DataFrame, Resolution]:
    """The windows a chart of ``rng`` draws (``resolution``), and that resolution."""
    res = resolution(rng, specs)
    return windows(engine, res.window, rng, topic, starts=res.starts(rng), columns=columns), res


def counting(specs: list[WindowSpec] | None = None, rng: TimeRange | None = None,
             kept: Callable[[str], timedelta | None] | None = None) -> tuple[str, timedelta]:
    """The window whose non-overlapping instances count each item once, and their spacing (the
    window's span: a tumbling window, or a sliding one read at starts one span apart). Of the
    configured windows still kept over the whole range (``kept``: window name → how long the
    store keeps it, None for ever), the shortest that needs at most ``COUNTING_ROWS`` of them per
    key; the longest-kept when none covers the range. Items are counted by the window their
    publish time falls in, so a range's edges are exact to that window's span."""
    specs = sorted(specs or DEFAULT_WINDOWS, key=lambda w: (w.span, w.step))
    now = datetime.now(timezone.utc)

    def covers(w: WindowSpec) -> bool:
        keep = kept(w.name) if kept is not None else None
        return rng is None or keep is None or now - keep <= rng.start

    covering = [w for w in specs if covers(w)]
    if not covering:
        longest = max(specs, key=lambda w: kept(w.name) or timedelta.max)
        return longest.name, longest.span
    length = (rng.end - rng.start) if rng is not None else timedelta(0)
    spec = next((w for w in covering if length / w.span <= COUNTING_ROWS), covering[-1])
    return spec.name, spec.span


def totals(engine: Engine, rng: TimeRange, specs: list[WindowSpec] | None = None,
           kept: Callable[[str], timedelta | None] | None = None) -> pd.DataFrame:
    """Per key over the range: distinct items (``items``) and the share of them the model
    called negative, summed over non-overlapping windows whose start lies in the range
    (``counting``: each item is in exactly one; sliding windows read at every step would count
    it once per overlap). A key is a topic or a watchlist (``watchlist:NAME``)."""
    with engine.connect() as conn:
        frame = _frame(conn.execute(totals_query(rng, specs, kept, dialect=engine.dialect.name)))
    if frame.empty:
        return pd.DataFrame(columns=["topic", "items", "negative_share", "mean"])
    frame["items"] = frame["items"].astype(int)
    counted = frame["items"].where(frame["items"] > 0)
    frame["negative_share"] = (frame["negative"].astype(float) / counted).fillna(0.0)
    frame["mean"] = frame["score_sum"].astype(float) / counted  # every headline of the range, once
    return frame[["topic", "items", "negative_share", "mean"]]


def totals_query(rng: TimeRange, specs: list[WindowSpec] | None = None,
                 kept: Callable[[str], timedelta | None] | None = None, *, dialect: str):
    """Per key: the counting windows' items and negative items. Grouped by ``topic || ''``, not
    ``topic``: grouping by the column let SQLite's planner pick a skip-scan of the primary key
    (key, window, start), which reads every stored window of that size, over the covering
    (window, start, …) index."""
    name, spacing = counting(specs, rng, kept)
    c = topic_windows.c
    key = c.topic.concat("").label("topic")
    q = (select(key, func.sum(c.count).label("items"), func.sum(c.negative_share * c.count).label("negative"),
                func.sum(c.mean_score * c.count).label("score_sum"))
         .where(c.window == name).group_by(key))
    if spacing != next(w.step for w in (specs or DEFAULT_WINDOWS) if w.name == name):  # a lookup per start
        return q.where(*_at(Resolution(name, spacing).starts(rng), dialect))
    return q.where(c.start >= rng.start, c.start < rng.end)


def _at(starts: list[datetime], dialect: str) -> tuple:
    """Windows starting at one of ``starts``. On PostgreSQL also the list's bounds as a range: on a
    long list its planner may scan the (window, start) index rather than look each start up, and
    with the bounds that scan reads the range, not every stored window of that size. SQLite looks
    each start up; given the range too, it scans the range instead (slower on a year of windows,
    bench/bench_dashboard.py), so it gets the list alone."""
    c = topic_windows.c
    if dialect != "postgresql" or not starts:
        return (c.start.in_(starts),)
    return c.start.in_(starts), c.start >= min(starts), c.start <= max(starts)


def topics(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(topic_windows.c.topic).distinct().order_by(topic_windows.c.topic))]


def headlines(engine: Engine, topic: str, start: datetime, end: datetime, limit: int = 500) -> pd.DataFrame:
    """The headlines of a topic, or of a watchlist (``watchlist:NAME``: items whose stored
    ``watchlists`` list holds the name), newest first."""
    if topic.startswith(WATCHLIST):  # the JSON list's text holds the name as json.dumps writes it
        which = cast(scored_news.c.watchlists, Text).contains(json.dumps(topic[len(WATCHLIST):]), autoescape=True)
    else:
        which = scored_news.c.topic == topic
    q = (select(scored_news.c.id, scored_news.c.published_at, scored_news.c.source, scored_news.c.title,
                scored_news.c.url, scored_news.c.sentiment, scored_news.c.score, scored_news.c.targets)
         .where(which, scored_news.c.published_at >= start, scored_news.c.published_at < end)
         .order_by(scored_news.c.published_at.desc()).limit(limit))
    with engine.connect() as conn:
        frame = _frame(conn.execute(q))
    columns = ["id", "published_at", "source", "title", "url", "sentiment", "score"]
    if topic.startswith(WATCHLIST):
        columns += ["headline_sentiment", "headline_score", "terms"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    if topic.startswith(WATCHLIST):
        frame = targeted(frame, topic[len(WATCHLIST):])
    return _utc(frame, "published_at")[columns]


def targeted(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """A watchlist's headlines as its windows read them: each row's sentiment and score toward
    the list's matched terms where the item has that reading (``targets``), the headline's own
    beside them (rows scored before targeted sentiment: the headline's in both)."""
    frame = frame.assign(headline_sentiment=frame["sentiment"], headline_score=frame["score"])
    readings = [(t or {}).get(name) if isinstance(t, dict) else None for t in frame["targets"]]
    frame["sentiment"] = [r["sentiment"] if r else s for r, s in zip(readings, frame["sentiment"])]
    frame["score"] = [r["score"] if r else s for r, s in zip(readings, frame["score"])]
    frame["terms"] = [", ".join(r["terms"]) if r else "" for r in readings]
    return frame


def _latest_events(rng: TimeRange | None, topic: str | None, *columns):
    """The latest event of each alert episode (fingerprint, starts_at) overlapping the range."""
    e = alert_events.c
    latest = select(e.fingerprint, e.starts_at, func.max(e.seq).label("seq"))
    if rng is not None:
        latest = latest.where(e.starts_at < rng.end)
    if topic is not None:
        latest = latest.where(e.topic == topic)
    latest = latest.group_by(e.fingerprint, e.starts_at).subquery()
    q = select(*columns).join_from(alert_events, latest, and_(latest.c.fingerprint == e.fingerprint,
                                                             latest.c.seq == e.seq, latest.c.starts_at == e.starts_at))
    if rng is not None:  # the latest event says whether the episode ended before the range
        q = q.where((e.ends_at.is_(None)) | (e.ends_at >= rng.start))
    return q


def firing(engine: Engine, rng: TimeRange | None) -> pd.DataFrame:
    """Per key, how many of its alert episodes overlapping the range (any: None) are firing now (the
    overview's column: no evidence or labels read)."""
    e = alert_events.c
    q = _latest_events(rng, None, e.topic, func.count().label("firing")).where(e.status == "firing").group_by(e.topic)
    with engine.connect() as conn:
        return _frame(conn.execute(q))


def alert_episodes(engine: Engine, rng: TimeRange | None = None, topic: str | None = None) -> pd.DataFrame:
    """One row per alert episode (fingerprint, starts_at) overlapping the range: its latest
    state, evidence, acknowledgement and delivery summary; newest first."""
    e = alert_events.c
    q = (_latest_events(rng, topic, alert_events, alert_acks.c.acked_by, alert_acks.c.acked_at)
         .outerjoin(alert_acks, and_(alert_acks.c.fingerprint == e.fingerprint, alert_acks.c.starts_at == e.starts_at))
         .order_by(e.starts_at.desc()))
    with engine.connect() as conn:
        frame = _frame(conn.execute(q))
    if frame.empty:
        return pd.DataFrame(columns=["fingerprint", "seq", "rule", "topic", "status", "severity", "value", "threshold",
                                     "window", "starts_at", "ends_at", "evidence", "reason", "acked_by",
                                     "acked_at", "delivery", "fired_evidence", "fired_window", "window_start",
                                     "window_end"])
    frame = _utc(frame, "starts_at", "ends_at", "acked_at", "received_at", "window_start", "window_end")
    fingerprints = sorted(set(frame["fingerprint"]))
    summary = deliveries(engine, fingerprints)
    keys = list(zip(frame["fingerprint"], frame["starts_at"].map(_instant)))
    frame["delivery"] = [summary.get(k, "not routed yet") for k in keys]
    fired = first_evidence(engine, fingerprints)
    firsts = [fired.get(k, ([], None)) for k in keys]
    frame["fired_evidence"] = [evidence for evidence, _ in firsts]
    frame["fired_window"] = [window for _, window in firsts]
    return frame.reset_index(drop=True)


def _instant(value) -> str:
    """One spelling of an episode's start for matching rows of two queries (SQLite hands back
    naive times, PostgreSQL aware ones)."""
    at = pd.Timestamp(value)
    return (at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")).isoformat()


def deliveries(engine: Engine, fingerprints: list[str]) -> dict[tuple[str, str], str]:
    """Per episode (fingerprint, start), its notifications by receiver and status
    ("hook: 2 sent; slack: 1 suppressed")."""
    o, e = notify_outbox.c, alert_events.c
    counts: dict[tuple[str, str], dict[str, list[str]]] = {}
    with engine.connect() as conn:
        for at in range(0, len(fingerprints), 500):
            q = (select(o.fingerprint, e.starts_at, o.receiver, o.status, func.count().label("n"))
                 .join_from(notify_outbox, alert_events, and_(e.fingerprint == o.fingerprint, e.seq == o.seq))
                 .where(o.fingerprint.in_(fingerprints[at:at + 500]))
                 .group_by(o.fingerprint, e.starts_at, o.receiver, o.status))
            for fp, starts, receiver, status, n in conn.execute(q):
                counts.setdefault((fp, _instant(starts)), {}).setdefault(receiver, []).append(f"{n} {status}")
    return {key: "; ".join(f"{r}: {', '.join(sorted(s))}" for r, s in sorted(by.items()))
            for key, by in counts.items()}


def first_evidence(engine: Engine, fingerprints: list[str]) -> dict[tuple[str, str], tuple[list, tuple | None]]:
    """Per episode (fingerprint, start), the evidence of its first event — the headlines that
    fired it (a later event, a reminder or the resolution, carries its own window's) — and the
    window that fired it (start, end; None for events stored before windows were kept)."""
    e = alert_events.c
    out: dict[tuple[str, str], tuple[list, tuple | None]] = {}
    with engine.connect() as conn:
        for at in range(0, len(fingerprints), 500):
            first = (select(e.fingerprint, e.starts_at, func.min(e.seq).label("seq"))
                     .where(e.fingerprint.in_(fingerprints[at:at + 500])).group_by(e.fingerprint, e.starts_at)
                     .subquery())
            q = select(e.fingerprint, e.starts_at, e.evidence, e.window_start, e.window_end).join_from(
                alert_events, first, and_(first.c.fingerprint == e.fingerprint, first.c.seq == e.seq))
            for fp, starts, evidence, w0, w1 in conn.execute(q):
                window = (as_utc(w0), as_utc(w1)) if w0 is not None and w1 is not None else None
                out[(fp, _instant(starts))] = (evidence or [], window)
    return out


def known(engine: Engine, key: str) -> bool:
    """True when the store has ever held a window of ``key`` (a topic or ``watchlist:NAME``)."""
    with engine.connect() as conn:
        return conn.execute(select(topic_windows.c.topic).where(topic_windows.c.topic == key).limit(1)).first() \
            is not None


def episode(engine: Engine, fingerprint: str, starts_at: datetime) -> dict | None:
    """The latest event of one alert episode (rule, topic, status, …), or None."""
    e = alert_events.c
    with engine.connect() as conn:
        row = conn.execute(select(e.rule, e.topic, e.status).where(e.fingerprint == fingerprint,
                                                                   e.starts_at == starts_at)
                           .order_by(e.seq.desc()).limit(1)).first()
    return None if row is None else dict(row._mapping)


def acknowledge(engine: Engine, fingerprint: str, starts_at: datetime, user: str, comment: str = "") -> bool:
    """Record that ``user`` owns this alert episode; False when it was acknowledged already."""
    with engine.begin() as conn:
        known = conn.execute(select(alert_acks.c.acked_by).where(
            alert_acks.c.fingerprint == fingerprint, alert_acks.c.starts_at == starts_at)).first()
        if known is not None:
            return False
        conn.execute(insert(alert_acks).values(fingerprint=fingerprint, starts_at=starts_at, acked_by=user,
                                               acked_at=datetime.now(timezone.utc), comment=comment))
    return True


def silence_alert(engine: Engine, rule: str, topic: str, hours: float, user: str, comment: str = "") -> str:
    """A silence for one rule on one topic (the shape `moodwire silence add` writes)."""
    now = datetime.now(timezone.utc)
    sid = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(silences).values(
            id=sid, matchers=[f'rule="{rule}"', f'topic="{topic}"'], starts_at=now,
            ends_at=now + timedelta(hours=hours), created_by=user, comment=comment, created_at=now))
    return sid


def active_silences(engine: Engine) -> pd.DataFrame:
    now = datetime.now(timezone.utc)
    with engine.connect() as conn:
        frame = _frame(conn.execute(select(silences).where(silences.c.ends_at > now)
                                          .order_by(silences.c.ends_at)))
    return _utc(frame, "starts_at", "ends_at", "created_at") if not frame.empty else frame


__all__ = ["TimeRange", "firing", "Resolution", "resolution", "series", "counting", "deliveries", "windows", "totals", "topics", "headlines", "alert_episodes", "acknowledge", "silence_alert",
           "active_silences", "RANGES"]
