"""The notifier's outbox in a real store (SQLite and PostgreSQL): once per (receiver, fingerprint,
seq), grouping, retries in order, failures, silences and their expiry, reminder throttling."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select

from alerts.outbox import (add_silence, backoff, due_batches, expire_silence, history, list_silences, mark_failed,
                           mark_retry, mark_sent, record_event, restore_unsilenced)
from alerts.routing import Destination
from moodwire.records import AlertEvent, Evidence
from moodwire.store import alert_acks, alert_events, notify_attempts, notify_batches, notify_outbox, open_store, silences

T0 = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = open_store(url)
    with engine.begin() as conn:  # the PostgreSQL server is shared by the session
        for table in (notify_attempts, notify_outbox, notify_batches, alert_events, silences, alert_acks):
            conn.execute(delete(table))
    return engine


def dest(receiver: str = "hook", wait_s: float = 10, interval_s: float = 60, repeat_h: float = 4) -> Destination:
    return Destination(receiver, "route", ("rule", "topic"), timedelta(seconds=wait_s), timedelta(seconds=interval_s),
                       timedelta(hours=repeat_h))


def event(seq: int = 1, status: str = "firing", topic: str = "Macro", fp: str | None = None,
          starts_at: datetime = T0) -> AlertEvent:
    return AlertEvent(fingerprint=fp or f"fp-{topic}", rule="negative-turn", topic=topic, status=status, value=-0.4,
                      threshold=-0.3, window="1h", starts_at=starts_at,
                      ends_at=T0 + timedelta(hours=1) if status == "resolved" else None, seq=seq, severity="critical",
                      evidence=[Evidence(id="i1", title="<b>Bank fails</b>", url="https://x.example/1", score=-0.9,
                                         published_at=T0)])


def statuses(engine) -> list[tuple[str, int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(notify_outbox.c.fingerprint, notify_outbox.c.seq,
                                                      notify_outbox.c.status).order_by(notify_outbox.c.id))]


def test_an_event_is_stored_once_per_receiver_however_often_it_arrives(engine):
    for _ in range(3):
        assert record_event(engine, event(), [dest("hook"), dest("mail")], now=T0) == {"hook": "pending", "mail": "pending"}
    assert statuses(engine) == [("fp-Macro", 1, "pending"), ("fp-Macro", 1, "pending")]
    with engine.connect() as conn:
        assert conn.execute(select(alert_events)).mappings().one()["evidence"][0]["title"] == "<b>Bank fails</b>"


def test_a_group_waits_group_wait_then_goes_out_as_one_notification_then_respects_group_interval(engine):
    record_event(engine, event(fp="a", topic="Macro"), [dest()], now=T0)
    record_event(engine, event(fp="b", topic="Macro"), [dest()], now=T0 + timedelta(seconds=4))
    assert due_batches(engine, now=T0 + timedelta(seconds=9)) == []
    [batch] = due_batches(engine, now=T0 + timedelta(seconds=10))
    assert [(e.fingerprint, e.seq) for e in batch.events] == [("a", 1), ("b", 1)]
    mark_sent(engine, batch, now=T0 + timedelta(seconds=10))
    record_event(engine, event(fp="a", seq=2, status="resolved"), [dest()], now=T0 + timedelta(seconds=20))
    assert due_batches(engine, now=T0 + timedelta(seconds=40)) == []  # group_interval (60 s) since the last one
    [later] = due_batches(engine, now=T0 + timedelta(seconds=70))
    assert [(e.fingerprint, e.seq, e.status) for e in later.events] == [("a", 2, "resolved")]
    assert later.idempotency_key != batch.idempotency_key


def test_a_retry_resends_the_same_notification_and_later_ones_wait_behind_it(engine):
    record_event(engine, event(fp="a"), [dest(wait_s=0)], now=T0)
    [first] = due_batches(engine, now=T0)
    mark_retry(engine, first, "connection refused", backoff(1, timedelta(seconds=1), timedelta(minutes=5)), now=T0)
    record_event(engine, event(fp="b", topic="Energy"), [dest(wait_s=0)], now=T0)  # another group, same receiver
    assert due_batches(engine, now=T0 + timedelta(milliseconds=500)) == []  # neither: order per receiver
    [again] = due_batches(engine, now=T0 + timedelta(seconds=1))
    assert (again.id, again.idempotency_key, again.attempts) == (first.id, first.idempotency_key, 1)
    mark_sent(engine, again, now=T0 + timedelta(seconds=1))
    [second] = due_batches(engine, now=T0 + timedelta(seconds=1))
    assert [e.fingerprint for e in second.events] == ["b"]
    with engine.connect() as conn:
        attempts = conn.execute(select(notify_attempts.c.ok, notify_attempts.c.error).order_by(notify_attempts.c.id)).all()
    assert [tuple(a) for a in attempts] == [(False, "connection refused"), (True, None)]


def test_backoff_doubles_up_to_the_cap():
    assert [backoff(n, timedelta(seconds=1), timedelta(seconds=10)).total_seconds() for n in range(1, 7)] == \
        [1, 2, 4, 8, 10, 10]


@given(attempts=st.integers(1, 10**7), initial_ms=st.integers(1, 10**7), cap_ms=st.integers(1, 10**9))
def test_backoff_never_overflows_however_long_a_receiver_is_down(attempts, initial_ms, cap_ms):
    """A receiver down for hours at a short cap reached about 50 attempts, and initial * 2**49 as
    a timedelta raised OverflowError in every dispatch round: no receiver got anything."""
    initial, cap = timedelta(milliseconds=initial_ms), timedelta(milliseconds=cap_ms)
    delay = backoff(attempts, initial, cap)
    assert timedelta(0) < delay <= cap and (delay == cap or attempts < 1100)


def test_a_non_retryable_failure_is_recorded_and_visible_and_does_not_block_the_receiver(engine):
    record_event(engine, event(fp="a"), [dest(wait_s=0)], now=T0)
    [batch] = due_batches(engine, now=T0)
    mark_failed(engine, batch, "POST http://x: HTTP 404 'no such hook'", now=T0)
    record_event(engine, event(fp="b", topic="Energy"), [dest(wait_s=0)], now=T0)
    [nxt] = due_batches(engine, now=T0)
    assert [e.fingerprint for e in nxt.events] == ["b"]
    rows = {r["fingerprint"]: r for r in history(engine)}
    assert rows["a"]["status"] == "failed" and "HTTP 404" in rows["a"]["reason"]


def test_a_silence_holds_back_matching_events_and_its_expiry_restores_a_still_firing_alert(engine):
    now = datetime.now(timezone.utc)
    sid = add_silence(engine, ['topic="Macro"'], now - timedelta(minutes=1), now + timedelta(hours=1), "ana", "known")
    assert [s.id for s in list_silences(engine, now=now)] == [sid]
    assert record_event(engine, event(fp="m"), [dest(wait_s=0)], now=now) == {"hook": "silenced"}
    assert record_event(engine, event(fp="e", topic="Energy"), [dest(wait_s=0)], now=now) == {"hook": "pending"}
    [batch] = due_batches(engine, now=now)
    assert [e.fingerprint for e in batch.events] == ["e"]
    mark_sent(engine, batch, now=now)
    assert restore_unsilenced(engine, now=now) == 0
    assert expire_silence(engine, sid, now=now + timedelta(minutes=1))
    assert not expire_silence(engine, sid, now=now + timedelta(minutes=2))  # already ended
    assert restore_unsilenced(engine, now=now + timedelta(minutes=2)) == 1
    [restored] = due_batches(engine, now=now + timedelta(minutes=2))
    assert [e.fingerprint for e in restored.events] == ["m"]


def test_a_silenced_alert_that_resolved_meanwhile_is_not_restored(engine):
    now = datetime.now(timezone.utc)
    sid = add_silence(engine, ['rule=~"negative.*"'], now - timedelta(minutes=1), now + timedelta(hours=1), "ana", "")
    record_event(engine, event(seq=1), [dest(wait_s=0)], now=now)
    record_event(engine, event(seq=2, status="resolved"), [dest(wait_s=0)], now=now)
    expire_silence(engine, sid, now=now)
    assert restore_unsilenced(engine, now=now + timedelta(seconds=1)) == 0
    assert [s for _, _, s in statuses(engine)] == ["silenced", "silenced"]


@pytest.mark.parametrize("matchers, message", [([], "at least one matcher"), (["topic"], "is not name=value")])
def test_bad_silences_are_refused(engine, matchers, message):
    with pytest.raises(ValueError, match=message):
        add_silence(engine, matchers, T0, T0 + timedelta(hours=1), "ana", "")


def test_reminders_within_the_route_repeat_interval_are_suppressed(engine):
    now = datetime.now(timezone.utc)
    record_event(engine, event(seq=1), [dest(wait_s=0, repeat_h=1)], now=now)
    [b] = due_batches(engine, now=now)
    mark_sent(engine, b, now=now)
    # The evaluator's reminder (same episode, next seq) 30 min later: within the route's 1 h.
    assert record_event(engine, event(seq=2), [dest(wait_s=0, repeat_h=1)], now=now + timedelta(minutes=30)) == \
        {"hook": "suppressed"}
    assert record_event(engine, event(seq=3), [dest(wait_s=0, repeat_h=1)], now=now + timedelta(minutes=61)) == \
        {"hook": "pending"}
    # A new episode (another starts_at) is never a reminder.
    assert record_event(engine, event(seq=4, starts_at=T0 + timedelta(hours=5)), [dest(wait_s=0, repeat_h=1)],
                        now=now + timedelta(minutes=62)) == {"hook": "pending"}
    with engine.connect() as conn:
        assert conn.execute(select(notify_batches)).all()  # the first notification is on record


def test_an_acknowledged_episode_gets_no_reminders_but_its_resolution_is_sent(engine):
    from sqlalchemy import insert

    now = datetime.now(timezone.utc)
    record_event(engine, event(seq=1), [dest(wait_s=0, repeat_h=0)], now=now)
    with engine.begin() as conn:
        conn.execute(insert(alert_acks).values(fingerprint="fp-Macro", starts_at=T0, acked_by="ana", acked_at=now,
                                               comment="on it"))
    assert record_event(engine, event(seq=2), [dest(wait_s=0, repeat_h=0)], now=now) == {"hook": "suppressed"}
    assert record_event(engine, event(seq=3, status="resolved"), [dest(wait_s=0, repeat_h=0)], now=now) == \
        {"hook": "pending"}
    assert "acknowledged by ana" in {r["seq"]: r for r in history(engine)}[2]["reason"]


def test_a_store_from_before_resolution_reasons_is_migrated_and_keeps_its_rows(engine):
    """Schema 4 → 6 adds ``alert_events.reason`` (5) and the key kind columns (6): simulate a
    version-4 store holding an event, migrate it, and carry a resolution with a reason through
    the outbox."""
    from sqlalchemy import inspect, text

    from moodwire.store import SCHEMA_VERSION, migrate, schema_version

    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE alert_events DROP COLUMN reason"))
        conn.execute(text("ALTER TABLE alert_events DROP COLUMN kind"))
        conn.execute(text("ALTER TABLE topic_windows DROP COLUMN kind"))
        conn.execute(text("ALTER TABLE scored_news DROP COLUMN watchlists"))
        conn.execute(text("ALTER TABLE scored_news DROP COLUMN targets"))  # version 9's
        conn.execute(text("ALTER TABLE alert_events DROP COLUMN window_start"))  # version 10's
        conn.execute(text("ALTER TABLE alert_events DROP COLUMN window_end"))
        for index in ("scored_news_time", "topic_windows_window_start", "alert_events_time", "notify_outbox_fingerprint"):
            conn.execute(text(f"DROP INDEX {index}"))  # version 7's
        conn.execute(delete(schema_version).where(schema_version.c.version >= 5))
        conn.execute(text("INSERT INTO alert_events (fingerprint, seq, rule, topic, status, severity, labels, value, "
                          "threshold, \"window\", starts_at, evidence, received_at) VALUES ('old', 1, 'r', 'Macro', "
                          "'firing', 'warning', '{}', -0.5, -0.3, '1h', :t, '[]', :t)"), {"t": T0})
    assert migrate(engine) == SCHEMA_VERSION == 10
    assert migrate(engine) == 10  # idempotent
    with engine.connect() as conn:
        assert {"reason", "kind", "window_start", "window_end"} <= {
            c["name"] for c in inspect(conn).get_columns("alert_events")}
        assert "kind" in {c["name"] for c in inspect(conn).get_columns("topic_windows")}
        assert {"watchlists", "targets"} <= {c["name"] for c in inspect(conn).get_columns("scored_news")}
        assert conn.execute(select(alert_events.c.reason).where(alert_events.c.fingerprint == "old")).scalar() is None
        assert sorted(conn.execute(select(schema_version.c.version)).scalars()) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        assert "topic_windows_window_start" in {i["name"] for i in inspect(conn).get_indexes("topic_windows")}
        assert "scored_news_time" in {i["name"] for i in inspect(conn).get_indexes("scored_news")}
    why = "2 items in the window, under min_count 3: not judged"
    resolved = event(seq=2, status="resolved").model_copy(update={
        "reason": why, "window_start": T0 - timedelta(hours=1), "window_end": T0})  # version 10's columns too
    record_event(engine, resolved, [dest(wait_s=0)], now=T0)
    [batch] = due_batches(engine, now=T0)
    assert batch.events == [resolved]
