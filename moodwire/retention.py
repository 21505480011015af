"""How long the store keeps what, and pruning it (``moodwire store prune``).

A policy names a keep-time per kind of row: scored items (by publish time), windows per window
name (by window end; ``*`` for the rest), alert history (episodes that ended before the
cut-off; a firing episode is kept whatever its age), delivery records (finished ones), and
ingest's seen-set (its own expiry). Deletes run in small transactions (``batch`` rows each), so
the sink and the notifier keep writing while a large store is pruned; the planner's statistics
are refreshed afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, tuple_
from sqlalchemy.engine import Engine

from moodwire.spans import parse_span
from moodwire.store import (alert_acks, alert_events, analyze, ingest_seen, notify_attempts, notify_batches,
                            notify_outbox, scored_news, topic_windows)


@dataclass(frozen=True)
class Retention:
    items: timedelta | None
    windows: dict[str, timedelta | None] = field(default_factory=dict)  # window name (or "*") → keep
    alerts: timedelta | None = None
    deliveries: timedelta | None = None

    def window(self, name: str) -> timedelta | None:
        """How long windows named ``name`` are kept (None: forever)."""
        return self.windows.get(name, self.windows.get("*"))


def parse_keep(text: str) -> timedelta | None:
    """'90d' → 90 days; 'forever' → None."""
    text = text.strip()
    return None if text == "forever" else parse_span(text)


def parse_window_keeps(text: str) -> dict[str, timedelta | None]:
    """'5m=30d,*=730d' → {'5m': 30 days, '*': 730 days}; ValueError naming the bad part."""
    out: dict[str, timedelta | None] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, keep = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part!r} is not WINDOW=KEEP (e.g. 5m=30d, *=730d)")
        out[name.strip()] = parse_keep(keep)
    return out


def prune(engine: Engine, policy: Retention, now: datetime | None = None, batch: int = 2000) -> dict[str, int]:
    """Delete what the policy no longer keeps; returns rows deleted per table."""
    now = now or datetime.now(timezone.utc)
    done: dict[str, int] = {}
    if policy.items is not None:
        done["scored_news"] = _delete(engine, scored_news, [scored_news.c.id],
                                      scored_news.c.published_at < now - policy.items, batch)
    names = _window_names(engine)
    windows = 0
    for name in names:
        keep = policy.window(name)
        if keep is not None:
            c = topic_windows.c
            cut = now - keep  # start < cut too (a window starts before it ends): the (window, start) index
            windows += _delete(engine, topic_windows, [c.topic, c.window, c.start],
                               (c.window == name) & (c.start < cut) & (c.end < cut), batch)
    done["topic_windows"] = windows
    if policy.alerts is not None:
        done.update(_prune_alerts(engine, now - policy.alerts, batch))
    if policy.deliveries is not None:
        cut = now - policy.deliveries
        done["notify_attempts"] = _delete(engine, notify_attempts, [notify_attempts.c.id],
                                          notify_attempts.c.at < cut, batch)
        done["notify_batches"] = _delete(engine, notify_batches, [notify_batches.c.id],
                                         (notify_batches.c.status != "sending") & (notify_batches.c.created_at < cut),
                                         batch)
        done["notify_outbox"] = _delete(engine, notify_outbox, [notify_outbox.c.id],
                                        (notify_outbox.c.status != "pending") & (notify_outbox.c.updated_at < cut),
                                        batch)
    done["ingest_seen"] = _delete(engine, ingest_seen, [ingest_seen.c.id], ingest_seen.c.expires_at < now, batch)
    if any(done.values()):
        analyze(engine)
    return done


def _window_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(topic_windows.c.window).distinct())]


def _prune_alerts(engine: Engine, cut: datetime, batch: int) -> dict[str, int]:
    """Episodes whose resolution (their latest event's ``ends_at``) is before ``cut``: all their
    events and their acknowledgement."""
    e = alert_events.c
    ended = select(e.fingerprint, e.starts_at).where(e.ends_at.is_not(None), e.ends_at < cut).distinct()
    with engine.connect() as conn:
        episodes = [tuple(r) for r in conn.execute(ended)]
    events = acks = 0
    for at in range(0, len(episodes), batch):
        chunk = episodes[at:at + batch]
        with engine.begin() as conn:
            events += conn.execute(delete(alert_events).where(tuple_(e.fingerprint, e.starts_at).in_(chunk))).rowcount
            acks += conn.execute(delete(alert_acks).where(
                tuple_(alert_acks.c.fingerprint, alert_acks.c.starts_at).in_(chunk))).rowcount
    return {"alert_events": events, "alert_acks": acks}


def _delete(engine: Engine, table, key: list, condition, batch: int) -> int:
    """Delete the rows matching ``condition``, ``batch`` at a time, each batch its own transaction
    (``DELETE … WHERE key IN (SELECT key … LIMIT batch)``: a literal list of composite keys made
    SQLite scan the table once per batch)."""
    total = 0
    target = key[0] if len(key) == 1 else tuple_(*key)
    while True:
        with engine.begin() as conn:
            deleted = conn.execute(delete(table).where(target.in_(select(*key).where(condition).limit(batch)))).rowcount
        if not deleted:
            return total
        total += deleted
