"""The dashboard's store access: small query functions returning data frames, and the two
writes analysts make (acknowledge, silence). No Dash here; no I/O at import time."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy import Text, and_, cast, func, insert, select
from sqlalchemy.engine import Engine

from moodwire.records import WATCHLIST_KEY, watchlist_name
from moodwire.store import (alert_acks, alert_events, notify_outbox, scored_news, silences, topic_windows)

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
TUMBLING = "5m"  # the tumbling window (span = step): its counts add up to the items of a range
WATCHLIST = WATCHLIST_KEY


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def window(self) -> str:
        """The aggregate window that suits the range: 5-minute points for an hour, hourly beyond."""
        return "5m" if self.end - self.start <= timedelta(hours=3) else "1h"

    @classmethod
    def parse(cls, name: str | None, start: str | None = None, end: str | None = None,
              now: datetime | None = None) -> "TimeRange":
        now = now or datetime.now(timezone.utc)
        if name == "custom" and start and end:
            s, e = _when(start), _when(end)
            if s is not None and e is not None and s < e:
                return cls(s, e)
        return cls(now - RANGES.get(name or "24h", RANGES["24h"]), now)


def _when(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        return None
    # compared in UTC: SQLite compares the stored UTC text, so an offset kept here shifted the range
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for c in columns:
        if c in frame:
            frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


def windows(engine: Engine, window: str, rng: TimeRange, topic: str | None = None) -> pd.DataFrame:
    """Window aggregates whose start lies in the range, one row per (topic, start)."""
    q = select(topic_windows).where(topic_windows.c.window == window, topic_windows.c.start >= rng.start,
                                    topic_windows.c.start < rng.end).order_by(topic_windows.c.topic,
                                                                              topic_windows.c.start)
    if topic is not None:
        q = q.where(topic_windows.c.topic == topic)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(q).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=[c.name for c in topic_windows.columns])
    return _utc(frame, "start", "end", "updated_at")


def totals(engine: Engine, rng: TimeRange) -> pd.DataFrame:
    """Per key over the range: distinct items (``items``) and the share of them the model
    called negative, summed over the tumbling windows inside the range (each item is in
    exactly one; sliding windows would count it once per overlap). A key is a topic or a
    watchlist (``watchlist:NAME``)."""
    c = topic_windows.c
    q = (select(c.topic, func.sum(c.count).label("items"), func.sum(c.negative_share * c.count).label("negative"))
         .where(c.window == TUMBLING, c.start >= rng.start, c.start < rng.end).group_by(c.topic))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(q).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=["topic", "items", "negative_share"])
    frame["items"] = frame["items"].astype(int)
    frame["negative_share"] = (frame["negative"].astype(float) / frame["items"].where(frame["items"] > 0)).fillna(0.0)
    return frame[["topic", "items", "negative_share"]]


def label(key: str) -> str:
    """A key as people read it: a topic's name, or "watchlist: NAME"."""
    name = watchlist_name(key)
    return f"watchlist: {name}" if name is not None else key


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
                scored_news.c.url, scored_news.c.sentiment, scored_news.c.score)
         .where(which, scored_news.c.published_at >= start, scored_news.c.published_at < end)
         .order_by(scored_news.c.published_at.desc()).limit(limit))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(q).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=["id", "published_at", "source", "title", "url", "sentiment", "score"])
    return _utc(frame, "published_at")


def alert_episodes(engine: Engine, rng: TimeRange | None = None, topic: str | None = None) -> pd.DataFrame:
    """One row per alert episode (fingerprint, starts_at): its latest state, evidence,
    acknowledgement and delivery summary; newest first."""
    latest = (select(alert_events.c.fingerprint, alert_events.c.starts_at, func.max(alert_events.c.seq).label("seq"))
              .group_by(alert_events.c.fingerprint, alert_events.c.starts_at).subquery())
    q = (select(alert_events, alert_acks.c.acked_by, alert_acks.c.acked_at)
         .join(latest, and_(latest.c.fingerprint == alert_events.c.fingerprint, latest.c.seq == alert_events.c.seq))
         .outerjoin(alert_acks, and_(alert_acks.c.fingerprint == alert_events.c.fingerprint,
                                     alert_acks.c.starts_at == alert_events.c.starts_at))
         .order_by(alert_events.c.starts_at.desc()))
    if topic is not None:
        q = q.where(alert_events.c.topic == topic)
    if rng is not None:  # episodes overlapping the range
        q = q.where(alert_events.c.starts_at < rng.end)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(q).mappings().all())
        deliveries = pd.DataFrame(conn.execute(
            select(notify_outbox.c.fingerprint, notify_outbox.c.status, func.count().label("n"))
            .group_by(notify_outbox.c.fingerprint, notify_outbox.c.status)).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=["fingerprint", "seq", "rule", "topic", "status", "severity", "value", "threshold",
                                     "window", "starts_at", "ends_at", "evidence", "reason", "acked_by",
                                     "acked_at", "delivery"])
    frame = _utc(frame, "starts_at", "ends_at", "acked_at", "received_at")
    if rng is not None:
        frame = frame[frame["ends_at"].isna() | (frame["ends_at"] >= rng.start)]
    summary = {}
    for fp, group in (deliveries.groupby("fingerprint") if not deliveries.empty else []):
        summary[fp] = ", ".join(f"{n} {s}" for s, n in sorted(zip(group["status"], group["n"])))
    frame["delivery"] = frame["fingerprint"].map(lambda fp: summary.get(fp, "not routed yet"))
    return frame.reset_index(drop=True)


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
        frame = pd.DataFrame(conn.execute(select(silences).where(silences.c.ends_at > now)
                                          .order_by(silences.c.ends_at)).mappings().all())
    return _utc(frame, "starts_at", "ends_at", "created_at") if not frame.empty else frame


__all__ = ["TimeRange", "windows", "totals", "label", "topics", "headlines", "alert_episodes", "acknowledge", "silence_alert",
           "active_silences", "RANGES"]
