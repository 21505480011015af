"""The store's schema (a shared contract, like the wire records) and engine creation.

SQLite file by default, PostgreSQL in production: any SQLAlchemy URL in
``MOODWIRE_STORE_URL``. ``open_store`` creates missing tables; each table a stage owns
is written only by that stage.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (Column, DateTime, Integer, MetaData, String, Table, Text,
                        create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from moodwire.errors import MoodwireError


class StoreError(MoodwireError):
    """The store cannot be opened or written."""


metadata = MetaData()

# Ingest's seen-set: ids already published to news.raw, kept until expires_at.
ingest_seen = Table(
    "ingest_seen", metadata,
    Column("id", String(64), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# Ingest's per-feed HTTP validators, so conditional GET survives restarts.
feed_state = Table(
    "feed_state", metadata,
    Column("feed", String(200), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("failures", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("updated_at", DateTime(timezone=True)),
)


def open_store(url: str, create: bool = True) -> Engine:
    """An engine for ``url`` with the schema created; a clear StoreError when unusable."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise StoreError(f"MOODWIRE_STORE_URL={url!r} is not usable: {exc}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # concurrent readers while one stage writes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()
    if create:
        try:
            metadata.create_all(engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the store at {engine.url.render_as_string(hide_password=True)}: "
                             f"{exc.orig}") from None
    return engine


__all__ = ["StoreError", "open_store", "metadata", "ingest_seen", "feed_state"]
