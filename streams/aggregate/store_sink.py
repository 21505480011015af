"""Idempotent writes of scored items and window aggregates into the store, and the aggregate
worker's batch handlers that make them (``sink_handler``).

Upserts make replays harmless (at-least-once delivery, exactly-once effect): an item is
keyed by its id, a window by (topic, window, start), and a final window is never replaced
by a non-final update that arrives after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timezone

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from moodwire.errors import RecordError
from moodwire.records import DeadLetter, ScoredNews, TopicWindow, decode
from moodwire.store import StoreError, StoreRefused, scored_news, topic_windows


def _insert(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise StoreError(f"store dialect {engine.dialect.name!r} is not supported; use SQLite or PostgreSQL")
    return insert


def item_row(item: ScoredNews) -> dict:
    return {"id": item.id, "topic": item.topic, "published_at": item.published_at, "title": item.title,
            "url": item.url, "source": item.source, "sentiment": item.sentiment, "score": item.score,
            "probs": dict(item.probs), "topic_confidence": item.topic_confidence, "model": item.model,
            "classified_at": item.classified_at, "published_estimated": item.published_estimated,
            "watchlists": list(item.watchlists) or None,
            "targets": {name: t.model_dump(mode="json") for name, t in item.targets.items()} or None}


def window_row(window: TopicWindow, now: datetime | None = None) -> dict:
    return {"topic": window.topic, "window": window.window, "start": window.start, "end": window.end,
            "count": window.count, "mean_score": window.mean_score, "sum_sq": window.sum_sq,
            "negative_share": window.negative_share, "neutral_share": window.neutral_share,
            "positive_share": window.positive_share, "late_count": window.late_count,
            "most_negative": list(window.most_negative), "most_positive": list(window.most_positive),
            "final": window.final, "updated_at": now or datetime.now(timezone.utc), "kind": window.kind}


def upsert_items(engine: Engine, items: Sequence[ScoredNews]) -> int:
    items = [item for item in items if item.watchlist is None]  # a watchlist copy is the same item
    if not items:
        return 0
    rows = list({item.id: item_row(item) for item in items}.values())  # last one wins within a batch
    stmt = _insert(engine)(scored_news)
    stmt = stmt.on_conflict_do_update(index_elements=[scored_news.c.id],
                                      set_={c.name: stmt.excluded[c.name] for c in scored_news.c if c.name != "id"})
    return _run(engine, stmt, rows)


def upsert_windows(engine: Engine, windows: Sequence[TopicWindow]) -> int:
    if not windows:
        return 0
    rows = {}
    for window in windows:  # keep the last update of each window, a final one over later non-final ones
        key = (window.topic, window.window, window.start)
        if key not in rows or window.final or not rows[key]["final"]:
            rows[key] = window_row(window)
    keys = {"topic", "window", "start"}
    stmt = _insert(engine)(topic_windows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[topic_windows.c.topic, topic_windows.c.window, topic_windows.c.start],
        set_={c.name: stmt.excluded[c.name] for c in topic_windows.c if c.name not in keys},
        where=or_(topic_windows.c.final.is_(False), stmt.excluded.final.is_(True)))
    return _run(engine, stmt, list(rows.values()))


def _run(engine: Engine, stmt, rows: list[dict]) -> int:
    try:
        with engine.begin() as conn:
            conn.execute(stmt, rows)
    except SQLAlchemyError as exc:
        # The rows themselves: a value the database refuses (DataError, IntegrityError), or one
        # the driver cannot send (a StatementError that is not a database's answer).
        if isinstance(exc, (DataError, IntegrityError)) or (isinstance(exc, StatementError)
                                                            and not isinstance(exc, DBAPIError)):
            raise StoreRefused(f"the store at {engine.url.render_as_string(hide_password=True)} refused the "
                               f"rows: {getattr(exc, 'orig', exc)}") from None
        raise StoreError(f"cannot write to the store at {engine.url.render_as_string(hide_password=True)}: "
                         f"{getattr(exc, 'orig', exc)}") from None
    return len(rows)


log = logging.getLogger("moodwire.aggregate")


def _until_stored(metrics, first_s: float = 1.0, most_s: float = 60.0):
    """Attempts of a store write for as long as the store is away, 1 s, 2 s, 4 s … 60 s apart;
    each failure counted and logged (tenacity)."""
    from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

    def failed(state) -> None:
        metrics.errors.labels("store").inc()
        log.error("%s (retrying in %.0f s)", state.outcome.exception(), state.next_action.sleep)

    def away(exc: BaseException) -> bool:  # a store away comes back; refused rows stay refused
        return isinstance(exc, StoreError) and not isinstance(exc, StoreRefused)

    return AsyncRetrying(retry=retry_if_exception(away),
                         wait=wait_exponential(multiplier=first_s, max=most_s), before_sleep=failed, reraise=True)


def sink_handler(source, engine: Engine, record_type, upsert, metrics, send_dead=None, first_retry_s: float = 1.0):
    """A batch handler that upserts a fetched batch of ``record_type`` into the store and
    acknowledges it once it is there. While the store is away the batch is retried with
    back-off and nothing is acknowledged: nothing is lost. When the store refuses the rows
    themselves (``StoreRefused``: a value it cannot hold) the batch is written a record at a
    time; each record it refuses alone is dead-lettered (reason ``refused``, with the store's
    words) through ``send_dead``, and the others are stored: one record never holds up the
    rest. Malformed records are skipped here (the aggregate agent dead-letters them)."""
    async def write(rows) -> None:
        loop = asyncio.get_running_loop()
        async for attempt in _until_stored(metrics, first_retry_s):
            with attempt:
                await loop.run_in_executor(None, upsert, engine, rows)

    async def sink(messages: list) -> None:
        rows = []
        for message in messages:
            try:
                rows.append((message, decode(record_type, message.value)))
            except RecordError:
                pass
        try:
            await write([row for _, row in rows])
        except StoreRefused as exc:
            log.warning("%s: writing its %d records one at a time", exc, len(rows))
            letters = []
            for message, row in rows:
                try:
                    await write([row])
                except StoreRefused as alone:
                    metrics.errors.labels("refused").inc()
                    log.error("dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, alone)
                    letters.append(DeadLetter.of("aggregate", message.topic, message.partition, message.offset,
                                                 f"refused: {alone}", message.value, "refused"))
            if letters and send_dead is not None:
                await send_dead(letters)
        source.ack(messages)
    return sink
