"""Dashboard sessions held on the server (the store's ``dashboard_sessions``), so that signing
out, removing a user or changing their hash ends a session at once, whatever cookie a browser
kept (OWASP ASVS 4.0 V3.3).

A session id is 32 random bytes, made anew at every sign-in; the store keeps its SHA-256 only.
A session ends when it was idle for ``idle`` (no request), or ``lifetime`` after its sign-in,
whichever comes first (Grafana's login_maximum_inactive_lifetime_duration and
login_maximum_lifetime_duration).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Engine

from moodwire.store import as_utc
from moodwire.store import dashboard_sessions as table


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    user: str
    credential: str
    created_at: datetime
    seen_at: datetime


class Sessions:
    def __init__(self, engine: Engine, idle: timedelta, lifetime: timedelta) -> None:
        self.engine, self.idle, self.lifetime = engine, idle, lifetime
        # seen_at is written at most this often: not one store write per Dash callback
        self.touch_every = min(timedelta(seconds=60), idle / 4)

    def start(self, user: str, credential: str, now: datetime | None = None) -> str:
        """A new session for ``user``; returns its id (for the cookie). Ended sessions of
        anyone are swept out on the way."""
        now = now or datetime.now(timezone.utc)
        sid = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(or_(table.c.seen_at < now - self.idle,
                                                 table.c.created_at < now - self.lifetime)))
            conn.execute(insert(table).values(id_hash=_digest(sid), user=user, credential=credential,
                                              created_at=now, seen_at=now))
        return sid

    def check(self, sid: str | None, now: datetime | None = None) -> Session | None:
        """The live session ``sid`` names (its last-seen time moved on), or None: unknown, ended
        by sign-out, or past a lifetime (then removed)."""
        if not sid:
            return None
        now = now or datetime.now(timezone.utc)
        key = _digest(sid)
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.user, table.c.credential, table.c.created_at, table.c.seen_at)
                               .where(table.c.id_hash == key)).first()
        if row is None:
            return None
        found = Session(row.user, row.credential, as_utc(row.created_at), as_utc(row.seen_at))
        if now - found.seen_at > self.idle or now - found.created_at > self.lifetime:
            self.end(sid)
            return None
        if now - found.seen_at >= self.touch_every:
            with self.engine.begin() as conn:
                conn.execute(update(table).where(table.c.id_hash == key).values(seen_at=now))
        return found

    def end(self, sid: str | None) -> None:
        if sid:
            with self.engine.begin() as conn:
                conn.execute(delete(table).where(table.c.id_hash == _digest(sid)))

    def end_user(self, user: str) -> int:
        """End every session of ``user``; returns how many there were."""
        with self.engine.begin() as conn:
            return conn.execute(delete(table).where(table.c.user == user)).rowcount

    def carry(self, user: str, old: str, new: str) -> None:
        """The user's hash was upgraded (same password): their sessions stay valid."""
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.user == user, table.c.credential == old)
                         .values(credential=new))


__all__ = ["Sessions", "Session"]
