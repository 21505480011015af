"""The store's schema (a shared contract, like the wire records) and engine creation.

SQLite file by default, PostgreSQL in production: any SQLAlchemy URL in
``MOODWIRE_STORE_URL``. ``open_store`` creates missing tables; each table a stage owns
is written only by that stage.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (JSON, Boolean, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, event, func, inspect, select)

from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError, SQLAlchemyError

from moodwire.errors import MoodwireError


class StoreError(MoodwireError):
    """The store cannot be opened or written."""


class StoreRefused(StoreError):
    """The store refused the rows themselves (a value it cannot hold, a constraint): writing
    them again cannot succeed, unlike a store that is away."""


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


# Written by the aggregate worker's sink: every scored item, upserted by id.
scored_news = Table(
    "scored_news", metadata,
    Column("id", String(64), primary_key=True),
    Column("topic", String(100), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("title", Text, nullable=False),
    Column("url", Text),
    Column("source", String(200), nullable=False),
    Column("sentiment", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("probs", JSON, nullable=False),
    Column("topic_confidence", Float, nullable=False),
    Column("model", String(200), nullable=False),
    Column("classified_at", DateTime(timezone=True), nullable=False),
    Column("published_estimated", Boolean, nullable=False, default=False),
    Column("watchlists", JSON),  # version 6: names of the watchlists the item matched (NULL: none)
    # version 9: per matched watchlist, the targeted reading {terms, sentiment, probs, score}
    # (NULL: none, or scored before targeted sentiment)
    Column("targets", JSON),
)
Index("scored_news_topic_time", scored_news.c.topic, scored_news.c.published_at)
Index("scored_news_time", scored_news.c.published_at)  # version 7: watchlist headlines, retention

# Written by the aggregate worker's sink: one row per (topic, window, start), upserted;
# a final row is never replaced by a non-final one.
topic_windows = Table(
    "topic_windows", metadata,
    Column("topic", String(100), primary_key=True),
    Column("window", String(16), primary_key=True),
    Column("start", DateTime(timezone=True), primary_key=True),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
    Column("mean_score", Float, nullable=False),
    Column("sum_sq", Float, nullable=False),
    Column("negative_share", Float, nullable=False),
    Column("neutral_share", Float, nullable=False),
    Column("positive_share", Float, nullable=False),
    Column("late_count", Integer, nullable=False),
    Column("most_negative", JSON, nullable=False),
    Column("most_positive", JSON, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # version 6: "watchlist" when ``topic`` is a watchlist key (watchlist:NAME); NULL or "topic" otherwise
    Column("kind", String(16)),
)
# version 7: every key's windows of one size over a time range (the overview, totals, retention);
# covering the overview's columns, so it reads the index alone, not the rows with their evidence
Index("topic_windows_window_start", topic_windows.c.window, topic_windows.c.start, topic_windows.c.topic,
      topic_windows.c.count, topic_windows.c.mean_score, topic_windows.c.negative_share)

# Written by `moodwire notify`: every AlertEvent it consumed, once per (fingerprint, seq).
alert_events = Table(
    "alert_events", metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("rule", String(100), nullable=False),
    Column("topic", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("window", String(16), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),
    Column("evidence", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text),  # version 5: why a resolution was not earned by the value
    Column("kind", String(16)),  # version 6: "watchlist" when ``topic`` is a watchlist key
    Column("window_start", DateTime(timezone=True)),  # version 10: the window that made the transition
    Column("window_end", DateTime(timezone=True)),
)
Index("alert_events_topic_time", alert_events.c.topic, alert_events.c.starts_at)
Index("alert_events_time", alert_events.c.starts_at)  # version 7: episodes of a range, retention

# The notifier's outbox: one row per (receiver, fingerprint, seq). status: pending → sent |
# failed (non-retryable) | silenced | suppressed (a reminder within the route's repeat_interval).
# A row joins a batch (one notification) at its first attempt and stays in it for retries.
notify_outbox = Table(
    "notify_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("receiver", String(100), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("batch_id", Integer, index=True),
    Column("reason", Text),
    Column("group_wait_s", Float, nullable=False),
    Column("group_interval_s", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("receiver", "fingerprint", "seq", name="notify_outbox_once"),
)
Index("notify_outbox_status", notify_outbox.c.status, notify_outbox.c.receiver)
Index("notify_outbox_fingerprint", notify_outbox.c.fingerprint)  # version 7: delivery of shown episodes

# One notification (a group's events) to one receiver, with its retry state.
notify_batches = Table(
    "notify_batches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("receiver", String(100), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # sending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
)

# Every delivery attempt, for the dashboard and `moodwire notify history`.
notify_attempts = Table(
    "notify_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", Integer, nullable=False, index=True),
    Column("receiver", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("retryable", Boolean, nullable=False),
    Column("error", Text),
)

# Silences (from `moodwire silence` and the dashboard): matchers over topic / rule / severity /
# labels; an event they match between starts_at and ends_at is recorded, not sent.
silences = Table(
    "silences", metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Acknowledgements (from the dashboard): an analyst owns an alert episode; `moodwire notify`
# then holds back its reminders (the resolution is still sent).
alert_acks = Table(
    "alert_acks", metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("starts_at", DateTime(timezone=True), primary_key=True),
    Column("acked_by", String(100), nullable=False),
    Column("acked_at", DateTime(timezone=True), nullable=False),
    Column("comment", Text, nullable=False),
)

# Dashboard sessions (written by the dashboard): a session is valid while its row is here, the
# user's hash is still the one it signed in with, and neither lifetime has passed. The cookie
# carries the id; the store keeps only its SHA-256 (a copy of the store opens no session).
dashboard_sessions = Table(
    "dashboard_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user", String(200), nullable=False, index=True),
    Column("credential", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

# Which schema version a store holds; ``migrate`` brings it to SCHEMA_VERSION.
schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

# version → tables it introduced. New versions append here; a change to an existing table
# gets its own step in COLUMNS_BY_VERSION (a store that created the table at its current
# shape already has the column).
SCHEMA_VERSION = 10
TABLES_BY_VERSION = {1: ("ingest_seen", "feed_state"), 2: ("scored_news", "topic_windows"),
                     3: ("alert_events", "notify_outbox", "notify_batches", "notify_attempts", "silences"),
                     4: ("alert_acks",), 5: (), 6: (), 7: (), 8: ("dashboard_sessions",), 9: (), 10: ()}
COLUMNS_BY_VERSION = {5: (("alert_events", "reason"),),
                      6: (("scored_news", "watchlists"), ("topic_windows", "kind"), ("alert_events", "kind")),
                      9: (("scored_news", "targets"),),
                      10: (("alert_events", "window_start"), ("alert_events", "window_end"))}
INDEXES_BY_VERSION = {7: (("scored_news", "scored_news_time"), ("topic_windows", "topic_windows_window_start"),
                          ("alert_events", "alert_events_time"), ("notify_outbox", "notify_outbox_fingerprint"))}


MIGRATION_LOCK = 0x6D6F6F64  # "mood": the PostgreSQL advisory lock key held while migrating


def migrate(engine: Engine) -> int:
    """Create what is missing and record the schema version; refuse a newer store.

    Stages start together (the demo starts five at once on a fresh store), so the migration
    holds the store's write lock from its first read: SQLite's ``BEGIN IMMEDIATE`` (the
    Python driver otherwise opens no transaction before DDL, and two stages both find
    ``schema_version`` missing) and a transaction-scoped advisory lock on PostgreSQL. The
    second stage waits, then finds the schema current."""
    from datetime import datetime, timezone

    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc())).scalar()
        if current is None and inspect(conn).has_table("ingest_seen"):
            current = 1  # created before versions were recorded
        current = current or 0
        if current > SCHEMA_VERSION:
            raise StoreError(f"the store at {engine.url.render_as_string(hide_password=True)} has schema version "
                             f"{current}, newer than this Moodwire ({SCHEMA_VERSION}); upgrade Moodwire")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for name in TABLES_BY_VERSION[version]:
                metadata.tables[name].create(conn, checkfirst=True)
            for name, column in COLUMNS_BY_VERSION.get(version, ()):
                if column not in {c["name"] for c in inspect(conn).get_columns(name)}:
                    spec = metadata.tables[name].c[column]
                    conn.exec_driver_sql(f'ALTER TABLE {name} ADD COLUMN {column} '
                                         f'{spec.type.compile(dialect=conn.dialect)}')
            for name, index in INDEXES_BY_VERSION.get(version, ()):
                if index not in {i["name"] for i in inspect(conn).get_indexes(name)}:
                    next(i for i in metadata.tables[name].indexes if i.name == index).create(conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=datetime.now(timezone.utc)))
    return SCHEMA_VERSION


def analyze(engine: Engine) -> None:
    """Refresh the query planner's statistics: SQLite keeps none until asked (without them it
    may scan a whole table where an index fits); PostgreSQL's autovacuum refreshes them too.
    On SQLite each index is sampled (``analysis_limit``), so this takes moments on a large
    store and holds the write lock only that long."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA analysis_limit=2000")
        conn.exec_driver_sql("ANALYZE")


BUSY_TIMEOUT_MS = 10_000


def _wal(cur) -> None:
    """Write-ahead logging, so stages read while one writes. The mode is kept in the file, so
    only the first connection to a new store switches it; SQLite answers that switch "database
    is locked" at once, without its busy handler, while another stage holds the lock, so it is
    retried here within the same busy timeout."""
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:  # an in-memory store answers "memory" and stays so
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


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
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _wal(cur)
            cur.close()
    if create:
        try:
            migrate(engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the store at {engine.url.render_as_string(hide_password=True)}: "
                             f"{exc.orig}") from None
        except DatabaseError as exc:  # a damaged SQLite file: "file is not a database", "malformed"
            raise StoreError(unreadable(engine, exc)) from None
    return engine


def as_utc(value):
    """A time read from the store, aware: SQLite hands back naive datetimes of the UTC time
    written, PostgreSQL aware ones. None stays None."""
    from datetime import timezone

    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def unreadable(engine: Engine, exc: DatabaseError) -> str:
    """One line for a store that cannot be read: away (the server, a lock) or damaged (an
    SQLite file that is not a database, or malformed)."""
    where = engine.url.database if engine.dialect.name == "sqlite" else \
        engine.url.render_as_string(hide_password=True)
    if isinstance(exc, OperationalError):
        return f"the store {where} cannot be reached ({exc.orig}); check MOODWIRE_STORE_URL and the database"
    return (f"the store {where} cannot be read ({exc.orig}): it is damaged; restore it from a backup, or move "
            "it away to start an empty store (MOODWIRE_STORE_URL names it)")


__all__ = ["StoreError", "StoreRefused", "open_store", "unreadable", "as_utc", "migrate", "analyze", "metadata", "ingest_seen", "feed_state", "scored_news",
           "topic_windows", "schema_version", "SCHEMA_VERSION", "alert_events", "notify_outbox", "notify_batches",
           "notify_attempts", "silences", "alert_acks", "dashboard_sessions"]
