"""The notifier's store side: events, the outbox, batches, attempts and silences.

Exactly once per (receiver, fingerprint, seq): an event and its outbox rows are written in one
transaction before the Kafka offset is committed, and the unique key drops a re-delivered
event. A row joins a batch (one notification, one idempotency key) at its first attempt and
stays in it through every retry, so a retry sends the same content under the same key.
Per receiver, notifications leave in outbox order: while a receiver's batch waits for a retry,
no later batch is formed for it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.engine import Engine

from alerts.routing import Destination, Matcher, Silence, idempotency_key, labels_of, parse_matchers, silenced_by
from moodwire.redact import redact
from moodwire.records import AlertEvent, Evidence
from moodwire.store import (alert_acks, alert_events, as_utc, notify_attempts, notify_batches, notify_outbox,
                            silences)

PENDING, SENT, FAILED, SILENCED, SUPPRESSED = "pending", "sent", "failed", "silenced", "suppressed"


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- silences
def add_silence(engine: Engine, matchers: list[str], starts_at: datetime, ends_at: datetime,
                created_by: str, comment: str) -> str:
    parse_matchers(matchers)  # raises ValueError naming the bad matcher
    if not matchers:
        raise ValueError("a silence needs at least one matcher (it would silence everything)")
    if ends_at <= starts_at:
        raise ValueError(f"the silence ends ({ends_at.isoformat()}) before it starts ({starts_at.isoformat()})")
    sid = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(silences).values(id=sid, matchers=list(matchers), starts_at=starts_at, ends_at=ends_at,
                                             created_by=created_by, comment=comment, created_at=_now()))
    return sid


def expire_silence(engine: Engine, sid: str, now: datetime | None = None) -> bool:
    now = now or _now()
    with engine.begin() as conn:
        done = conn.execute(update(silences).where(silences.c.id == sid, silences.c.ends_at > now)
                            .values(ends_at=now))
    return done.rowcount > 0


def list_silences(engine: Engine, active_only: bool = True, now: datetime | None = None) -> list[Silence]:
    now = now or _now()
    query = select(silences).order_by(silences.c.starts_at)
    if active_only:
        query = query.where(silences.c.ends_at > now)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [Silence(r["id"], tuple(Matcher.parse(m) for m in r["matchers"]), as_utc(r["starts_at"]),
                    as_utc(r["ends_at"]), r["created_by"], r["comment"]) for r in rows]


# --------------------------------------------------------------------------- events in
def record_event(engine: Engine, event: AlertEvent, destinations: list[Destination],
                 now: datetime | None = None) -> dict[str, str]:
    """Store ``event`` and its outbox rows (once); returns {receiver: status of its row}."""
    now = now or _now()
    labels = labels_of(event)
    active = list_silences(engine, now=now)
    out: dict[str, str] = {}
    with engine.begin() as conn:
        known = conn.execute(select(alert_events.c.seq).where(
            alert_events.c.fingerprint == event.fingerprint, alert_events.c.seq == event.seq)).first()
        if known is None:
            conn.execute(insert(alert_events).values(
                fingerprint=event.fingerprint, seq=event.seq, rule=event.rule, topic=event.topic,
                status=event.status, severity=event.severity, labels=dict(event.labels), value=event.value,
                threshold=event.threshold, window=event.window, starts_at=event.starts_at, ends_at=event.ends_at,
                evidence=[e.model_dump(mode="json") for e in event.evidence], received_at=now, reason=event.reason,
                kind=event.kind, window_start=event.window_start, window_end=event.window_end))
        for d in destinations:
            row = conn.execute(select(notify_outbox.c.status).where(
                notify_outbox.c.receiver == d.receiver, notify_outbox.c.fingerprint == event.fingerprint,
                notify_outbox.c.seq == event.seq)).first()
            if row is not None:
                out[d.receiver] = row.status
                continue
            status, reason = PENDING, None
            silence = silenced_by(active, labels, now)
            if silence is not None:
                status, reason = SILENCED, f"silence {silence.id}"
            elif event.status == "firing" and _is_reminder(conn, event):
                last = _last_notified(conn, d.receiver, event.fingerprint)
                ack = conn.execute(select(alert_acks.c.acked_by).where(
                    alert_acks.c.fingerprint == event.fingerprint, alert_acks.c.starts_at == event.starts_at)).first()
                if ack is not None:
                    status, reason = SUPPRESSED, f"reminder of an alert acknowledged by {ack.acked_by}"
                elif last is not None and now - last < d.repeat_interval:
                    status, reason = SUPPRESSED, (f"reminder within repeat_interval {d.repeat_interval} of the "
                                                  f"last notification ({last.isoformat()})")
            conn.execute(insert(notify_outbox).values(
                receiver=d.receiver, group_key=d.group_key(labels), fingerprint=event.fingerprint, seq=event.seq,
                status=status, reason=reason, group_wait_s=d.group_wait.total_seconds(),
                group_interval_s=d.group_interval.total_seconds(), created_at=now, updated_at=now))
            out[d.receiver] = status
    return out


def _is_reminder(conn, event: AlertEvent) -> bool:
    """A firing event whose alert episode (same starts_at) was already firing before."""
    earlier = conn.execute(select(alert_events.c.seq).where(
        alert_events.c.fingerprint == event.fingerprint, alert_events.c.seq < event.seq,
        alert_events.c.status == "firing", alert_events.c.starts_at == event.starts_at)).first()
    return earlier is not None


def _last_notified(conn, receiver: str, fingerprint: str) -> datetime | None:
    value = conn.execute(select(func.max(notify_batches.c.sent_at)).select_from(
        notify_outbox.join(notify_batches, notify_outbox.c.batch_id == notify_batches.c.id)).where(
        notify_outbox.c.receiver == receiver, notify_outbox.c.fingerprint == fingerprint,
        notify_batches.c.status == SENT)).scalar()
    return as_utc(value)


# --------------------------------------------------------------------------- planning
@dataclass
class Batch:
    id: int
    receiver: str
    group_key: str
    idempotency_key: str
    attempts: int
    events: list[AlertEvent]


def restore_unsilenced(engine: Engine, now: datetime | None = None) -> int:
    """Silenced rows whose silence has ended, for alerts still firing (the row is the alert's
    latest for that receiver), go back to pending: expiry restores the notification."""
    now = now or _now()
    active = list_silences(engine, now=now)
    restored = 0
    newer = notify_outbox.alias("newer")
    candidates = (  # silenced rows that are their alert's latest for the receiver, alert still firing
        select(notify_outbox)
        .join(alert_events, and_(alert_events.c.fingerprint == notify_outbox.c.fingerprint,
                                 alert_events.c.seq == notify_outbox.c.seq))
        .where(notify_outbox.c.status == SILENCED, alert_events.c.status == "firing",
               ~exists().where(newer.c.receiver == notify_outbox.c.receiver,
                               newer.c.fingerprint == notify_outbox.c.fingerprint,
                               newer.c.seq > notify_outbox.c.seq)))
    with engine.begin() as conn:
        for row in conn.execute(candidates).mappings().all():
            event = _event(conn, row["fingerprint"], row["seq"])
            if silenced_by(active, labels_of(event), now) is None:
                conn.execute(update(notify_outbox).where(notify_outbox.c.id == row["id"]).values(
                    status=PENDING, reason=f"restored: {row['reason']} ended", created_at=now, updated_at=now))
                restored += 1
    return restored


def due_batches(engine: Engine, now: datetime | None = None) -> list[Batch]:
    """The notifications to attempt now: retries whose time has come, then new batches from
    pending rows whose group has waited group_wait (and group_interval since its last one)."""
    now = now or _now()
    out: list[Batch] = []
    with engine.begin() as conn:
        open_batches = conn.execute(select(notify_batches).where(notify_batches.c.status == "sending")
                                    .order_by(notify_batches.c.id)).mappings().all()
        blocked = {b["receiver"] for b in open_batches}
        for b in open_batches:
            if as_utc(b["next_attempt_at"]) <= now and not any(
                    o["receiver"] == b["receiver"] and o["id"] < b["id"] for o in open_batches):
                out.append(_load_batch(conn, b))
        pending = conn.execute(select(notify_outbox).where(notify_outbox.c.status == PENDING,
                                                           notify_outbox.c.batch_id.is_(None))
                               .order_by(notify_outbox.c.id)).mappings().all()
        groups: dict[tuple[str, str], list] = {}
        for row in pending:
            groups.setdefault((row["receiver"], row["group_key"]), []).append(row)
        for (receiver, group_key), rows in sorted(groups.items(), key=lambda kv: kv[1][0]["id"]):
            if receiver in blocked:
                continue  # keep this receiver's notifications in order behind its retry
            first = min(as_utc(r["created_at"]) for r in rows)
            if now < first + timedelta(seconds=rows[0]["group_wait_s"]):
                blocked.add(receiver)
                continue
            last_sent = as_utc(conn.execute(select(func.max(notify_batches.c.sent_at)).where(
                notify_batches.c.receiver == receiver, notify_batches.c.group_key == group_key)).scalar())
            if last_sent is not None and now < last_sent + timedelta(seconds=rows[0]["group_interval_s"]):
                blocked.add(receiver)
                continue
            items = [(r["fingerprint"], r["seq"]) for r in rows]
            key = idempotency_key(receiver, items)
            batch_id = conn.execute(insert(notify_batches).values(
                receiver=receiver, group_key=group_key, idempotency_key=key, status="sending", attempts=0,
                next_attempt_at=now, created_at=now)).inserted_primary_key[0]
            conn.execute(update(notify_outbox).where(notify_outbox.c.id.in_([r["id"] for r in rows]))
                         .values(batch_id=batch_id, updated_at=now))
            out.append(Batch(batch_id, receiver, group_key, key, 0,
                             [_event(conn, f, s) for f, s in items]))
            blocked.add(receiver)  # one new batch per receiver per round: the next waits for this one
    return out


def _load_batch(conn, b) -> Batch:
    rows = conn.execute(select(notify_outbox.c.fingerprint, notify_outbox.c.seq)
                        .where(notify_outbox.c.batch_id == b["id"]).order_by(notify_outbox.c.id)).all()
    return Batch(b["id"], b["receiver"], b["group_key"], b["idempotency_key"], b["attempts"],
                 [_event(conn, f, s) for f, s in rows])


def _event(conn, fingerprint: str, seq: int) -> AlertEvent:
    r = conn.execute(select(alert_events).where(alert_events.c.fingerprint == fingerprint,
                                                alert_events.c.seq == seq)).mappings().one()
    return AlertEvent(fingerprint=r["fingerprint"], rule=r["rule"], topic=r["topic"], status=r["status"],
                      value=r["value"], threshold=r["threshold"], window=r["window"],
                      starts_at=as_utc(r["starts_at"]), ends_at=as_utc(r["ends_at"]),
                      evidence=[Evidence.model_validate(e) for e in r["evidence"]], seq=r["seq"],
                      severity=r["severity"], labels=r["labels"], reason=r["reason"],
                      kind=r["kind"] or "topic", window_start=as_utc(r["window_start"]),
                      window_end=as_utc(r["window_end"]))


# --------------------------------------------------------------------------- outcomes
def mark_sent(engine: Engine, batch: Batch, now: datetime | None = None) -> None:
    now = now or _now()
    with engine.begin() as conn:
        conn.execute(update(notify_batches).where(notify_batches.c.id == batch.id).values(
            status=SENT, sent_at=now, attempts=batch.attempts + 1, last_error=None))
        conn.execute(update(notify_outbox).where(notify_outbox.c.batch_id == batch.id).values(status=SENT, updated_at=now))
        conn.execute(insert(notify_attempts).values(batch_id=batch.id, receiver=batch.receiver, at=now, ok=True,
                                                    retryable=False, error=None))


def mark_retry(engine: Engine, batch: Batch, error: str, delay: timedelta, now: datetime | None = None) -> None:
    now, error = now or _now(), redact(error)
    with engine.begin() as conn:
        conn.execute(update(notify_batches).where(notify_batches.c.id == batch.id).values(
            attempts=batch.attempts + 1, next_attempt_at=now + delay, last_error=error))
        conn.execute(insert(notify_attempts).values(batch_id=batch.id, receiver=batch.receiver, at=now, ok=False,
                                                    retryable=True, error=error))


def mark_failed(engine: Engine, batch: Batch, error: str, now: datetime | None = None) -> None:
    now, error = now or _now(), redact(error)
    with engine.begin() as conn:
        conn.execute(update(notify_batches).where(notify_batches.c.id == batch.id).values(
            status=FAILED, attempts=batch.attempts + 1, last_error=error))
        conn.execute(update(notify_outbox).where(notify_outbox.c.batch_id == batch.id).values(
            status=FAILED, reason=error, updated_at=now))
        conn.execute(insert(notify_attempts).values(batch_id=batch.id, receiver=batch.receiver, at=now, ok=False,
                                                    retryable=False, error=error))


def backoff(attempts: int, initial: timedelta, cap: timedelta) -> timedelta:
    """Exponential: initial, 2×, 4×, … up to ``cap`` (``attempts`` failed so far, ≥ 1). In float
    seconds: ``initial * 2**n`` as a timedelta overflows past about 50 attempts (a receiver down
    for hours at a short cap), and that stopped every delivery, not just this one."""
    seconds = initial.total_seconds() * 2.0 ** min(max(0, attempts - 1), 1000)
    return timedelta(seconds=min(cap.total_seconds(), seconds))


# --------------------------------------------------------------------------- history
def history(engine: Engine, limit: int = 50) -> list[dict]:
    """The newest outbox rows with their event and batch: what was (or was not) delivered, why."""
    query = (select(notify_outbox.c.id, notify_outbox.c.receiver, notify_outbox.c.fingerprint, notify_outbox.c.seq,
                    notify_outbox.c.status, notify_outbox.c.reason, notify_outbox.c.created_at,
                    alert_events.c.rule, alert_events.c.topic, alert_events.c.status.label("alert_status"),
                    alert_events.c.severity, notify_batches.c.attempts, notify_batches.c.sent_at,
                    notify_batches.c.last_error)
             .select_from(notify_outbox.join(alert_events, and_(
                 alert_events.c.fingerprint == notify_outbox.c.fingerprint, alert_events.c.seq == notify_outbox.c.seq))
                 .outerjoin(notify_batches, notify_batches.c.id == notify_outbox.c.batch_id))
             .order_by(notify_outbox.c.id.desc()).limit(limit))
    with engine.connect() as conn:  # rows stored before errors were redacted are masked here
        return [{**r, "reason": redact(r["reason"]), "last_error": redact(r["last_error"])}
                for r in conn.execute(query).mappings().all()]


__all__ = ["record_event", "due_batches", "restore_unsilenced", "mark_sent", "mark_retry", "mark_failed", "backoff",
           "add_silence", "expire_silence", "list_silences", "history", "Batch",
           "PENDING", "SENT", "FAILED", "SILENCED", "SUPPRESSED"]
