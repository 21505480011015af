"""The persisted seen-set: item ids already published, so a restart does not re-flood news.raw."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from moodwire.redact import redact
from moodwire.store import feed_state, ingest_seen


class SeenStore:
    def __init__(self, engine: Engine, ttl: timedelta = timedelta(days=14)) -> None:
        self.engine, self.ttl = engine, ttl

    def unseen(self, ids: Iterable[str]) -> set[str]:
        ids = set(ids)
        if not ids:
            return set()
        now = datetime.now(timezone.utc)
        known: set[str] = set()
        with self.engine.connect() as conn:
            chunk = list(ids)
            for start in range(0, len(chunk), 500):
                rows = conn.execute(select(ingest_seen.c.id).where(
                    ingest_seen.c.id.in_(chunk[start:start + 500]), ingest_seen.c.expires_at > now))
                known.update(r[0] for r in rows)
        return ids - known

    def mark(self, items: Iterable[tuple[str, str]]) -> None:
        """Record (id, source) pairs as published (upsert: an expired id is renewed)."""
        now = datetime.now(timezone.utc)
        rows = [{"id": i, "source": s, "first_seen": now, "expires_at": now + self.ttl} for i, s in items]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(delete(ingest_seen).where(ingest_seen.c.id.in_([r["id"] for r in rows])))
            conn.execute(insert(ingest_seen), rows)

    def purge(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(ingest_seen).where(ingest_seen.c.expires_at <= datetime.now(timezone.utc))).rowcount

    def validators(self, feed: str) -> tuple[str | None, str | None]:
        with self.engine.connect() as conn:
            row = conn.execute(select(feed_state.c.etag, feed_state.c.last_modified)
                               .where(feed_state.c.feed == feed)).first()
        return (row[0], row[1]) if row else (None, None)

    def save_validators(self, feed: str, etag: str | None, last_modified: str | None, failures: int,
                        last_error: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(feed_state).where(feed_state.c.feed == feed))
            conn.execute(insert(feed_state), [{"feed": feed, "etag": etag, "last_modified": last_modified,
                                               "failures": failures, "last_error": redact(last_error),
                                               "updated_at": datetime.now(timezone.utc)}])
