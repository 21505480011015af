"""The dashboard's callbacks, called directly on a seeded SQLite store (what each returns for a
URL state, a click, a dragged range, an action)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dash import no_update
from sqlalchemy import select

from dashboards import ids
from dashboards.app import url_state
from dashboards.pages.alerts import alert_action, alerts_view
from dashboards.pages.overview import overview_view
from dashboards.pages.topic import headlines_frame, pick_search, topic_view
from dashboards.state import query, to_search
from moodwire.store import alert_acks, open_store, silences
from tests.dashboards.seed import seed


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('cb') / 'store.db'}")
    return engine, seed(engine)


def test_the_overview_links_each_topic_keeping_the_range(store):
    engine, _ = store
    rows, heat = overview_view(engine, "?range=24h")
    assert [r["topic"] for r in rows][0] == "[Macro](/topic?range=24h&topic=Macro)"
    assert rows[0]["firing"] == 1 and {r["firing"] for r in rows[1:]} == {0}
    assert heat.data[0].type == "heatmap"
    old = "?range=custom&start=2020-01-01T00:00&end=2020-01-02T00:00"
    [firing] = overview_view(engine, old)[0]  # no news then; Macro's alert is firing now: listed
    assert firing["firing"] == 1 and firing["volume"] == 0 and firing["topic"].startswith("[Macro]")


def test_the_topic_page_draws_trend_and_alert_periods(store):
    engine, _ = store
    fig, note = topic_view(engine, "?range=24h&topic=Macro")
    assert [t.name for t in fig.data][-1] == "alerts" and fig.layout.uirevision == "?range=24h&topic=Macro"
    assert "1 alert period(s)" in str(note) and "negative-turn: fired " in str(note) and "UTC, still firing" in str(note)
    empty, hint = topic_view(engine, "?range=24h")
    assert hint == "Pick a topic on the overview." and not empty.data


def test_headlines_follow_a_click_or_a_dragged_range_kept_in_the_url(store):
    engine, s = store
    base = "?range=24h&topic=Macro"
    everything, note = headlines_frame(engine, base)
    assert len(everything) == sum(1 for i in s["items"] if i.topic == "Macro") and "drag or click" in note
    end = s["end"]
    lo, hi = end - timedelta(hours=2), end - timedelta(hours=1)
    # A drag writes the interval into the URL; the headlines follow the URL alone.
    dragged_url = pick_search("selectedData", base, None, {"range": {"x": [hi.isoformat(), lo.isoformat()]}})
    assert query(dragged_url) == {**query(base), "from": lo.isoformat(), "to": hi.isoformat()}
    dragged, note = headlines_frame(engine, dragged_url)
    want = {i.id for i in s["items"] if i.topic == "Macro" and lo <= i.published_at <= hi}
    assert set(dragged["id"]) == want and "(selected on the chart)" in note
    # A redraw that clears the chart's selection (selectedData None) keeps the pick.
    assert pick_search("selectedData", dragged_url, None, None) is no_update
    # A click on a point picks its window; the button goes back to the whole range.
    click = {"points": [{"customdata": [lo.isoformat(), (lo + timedelta(minutes=5)).isoformat(), 3]}]}
    clicked, _ = headlines_frame(engine, pick_search("clickData", dragged_url, click, None))
    assert set(clicked["id"]) == {i.id for i in s["items"] if i.topic == "Macro"
                                  and lo <= i.published_at <= lo + timedelta(minutes=5)}
    assert query(pick_search(ids.CLEAR_PICK, dragged_url, click, None)) == query(base)
    # The chart outlines the pick, and picking keeps the analyst's zoom (same uirevision).
    fig, _ = topic_view(engine, dragged_url)
    assert fig.layout.uirevision == topic_view(engine, base)[0].layout.uirevision
    [pick] = [shape for shape in fig.layout.shapes if shape.name == "picked"]
    assert pick.yref == "paper" and (pick.y0, pick.y1) == (0, 1)  # one shape over the trend and the volume
    # A hand-edited link with a broken pick shows the whole range and says why.
    broken, note = headlines_frame(engine, base + "&from=yesterday&to=")
    assert len(broken) == len(everything) and "is not two ISO times" in note


def test_alert_actions_name_their_episode_and_write_to_the_store(tmp_path):
    from alerts.outbox import record_event
    from alerts.routing import Destination

    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")  # its own: this test adds an alert
    s = seed(engine)
    pager, *cards = alerts_view(engine, "?range=24h")
    assert "alerts 1–2 of 2" in str(pager) and "older" not in str(pager)
    assert len(cards) == 2 and "negative-turn on Macro" in str(cards[0])
    [ack, silence] = [b.id for b in buttons(cards[0])]
    assert buttons(cards[1]) == []  # a resolved episode offers neither
    # A new alert arrives between the page's render and the click: it becomes the first card,
    # and the click still acts on the alert the analyst saw.
    newer = s["alert"].model_copy(update={"fingerprint": "fp-crypto", "topic": "Crypto", "rule": "volume-spike",
                                          "starts_at": s["end"] - timedelta(minutes=5)})
    record_event(engine, newer, [Destination("hook", "route", ("rule", "topic"), timedelta(0), timedelta(0),
                                             timedelta(hours=4))])
    assert "volume-spike on Crypto" in str(alerts_view(engine, "?range=24h")[1])
    act = (ack["fingerprint"], ack["starts"])
    assert alert_action(engine, *act, "ack", "ana") == "negative-turn on Macro acknowledged by ana"
    assert alert_action(engine, *act, "ack", "bob") == "negative-turn on Macro was already acknowledged"
    assert alert_action(engine, silence["fingerprint"], silence["starts"], "silence", "ana") \
        .startswith("silenced negative-turn on Macro for 2 h")
    assert alert_action(engine, "fp-gone", ack["starts"], "ack", "ana").startswith("That alert is no longer")
    assert alert_action(engine, "fp-energy", "not a time", "ack", "ana") == "That button names no alert; reload the page."
    energy = (s["end"] - timedelta(hours=5)).isoformat()  # resolved: checked again on the server
    assert alert_action(engine, "fp-energy", energy, "ack", "ana").endswith("nothing to acknowledge.")
    with engine.connect() as conn:
        assert conn.execute(select(alert_acks.c.fingerprint, alert_acks.c.acked_by)).all() == [("fp-macro", "ana")]
        assert conn.execute(select(silences.c.matchers)).scalars().one() == ['rule="negative-turn"', 'topic="Macro"']


def buttons(component) -> list:
    found = [component] if getattr(component, "id", None) and isinstance(component.id, dict) else []
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        found += buttons(child)
    return found


def test_the_url_sets_the_controls_and_the_controls_set_the_url():
    assert url_state(None, "?range=7d&topic=Macro", "24h", "", "") == (no_update, "7d", "", "")
    assert url_state(ids.RANGE, "?range=7d&topic=Macro", "1h", "", "") == \
        ("?range=1h&topic=Macro", no_update, no_update, no_update)
    search, *_ = url_state(ids.END, "?topic=Macro", "custom", "2026-11-20T09:00", "2026-11-20T12:00")
    assert search == "?topic=Macro&range=custom&start=2026-11-20T09%3A00&end=2026-11-20T12%3A00"
    assert url_state(ids.RANGE, "?range=1h", "1h", "", "")[0] is no_update
    # A new range forgets the interval picked on the chart.
    assert url_state(ids.RANGE, "?range=24h&topic=Macro&from=2026-11-20T09%3A00&to=2026-11-20T10%3A00", "7d",
                     "", "")[0] == "?range=7d&topic=Macro"


def test_an_unknown_topic_says_so_and_the_note_keeps_both_dates(store):
    engine, _ = store
    fig, note = topic_view(engine, "?range=24h&topic=Nonsense")
    assert [a.text for a in fig.layout.annotations] == ["No such topic or watchlist: Nonsense"]
    assert "holds nothing for 'Nonsense'" in str(note)
    _, text = headlines_frame(engine, "?range=custom&start=2026-11-20T00:00&end=2026-11-21T06:00&topic=Macro")
    assert "from 2026-11-20 00:00 UTC to 2026-11-21 06:00 UTC" in text


def test_the_alerts_page_shows_a_page_of_episodes_and_links_to_the_next(store, monkeypatch):
    from dashboards.pages import alerts

    engine, _ = store
    monkeypatch.setattr(alerts, "PAGE_SIZE", 1)
    pager, card = alerts_view(engine, "?range=24h")
    assert "alerts 1–1 of 2" in str(pager) and "/alerts?range=24h&page=2" in str(pager)
    pager2, card2 = alerts_view(engine, "?range=24h&page=2")
    assert "alerts 2–2 of 2" in str(pager2) and "/alerts?range=24h&page=1" in str(pager2)
    assert "negative-turn on Macro" in str(card) and "negative-turn on Energy | Oil" in str(card2)
    assert alerts_view(engine, "?range=24h&page=99")[0].children[0].children == "alerts 2–2 of 2"


def test_a_range_reaching_past_what_the_store_keeps_is_said():
    from datetime import datetime, timedelta, timezone

    from dashboards.app import retention_note
    from moodwire.settings import load_settings

    settings = load_settings(environ={"MOODWIRE_STORE_KEEP_WINDOWS": "5m=30d,1h=90d,24h=100d"})
    now = datetime.now(timezone.utc)

    def custom(days: int) -> str:
        return to_search({"range": "custom", "start": (now - timedelta(days=days)).isoformat(), "end": now.isoformat()})

    assert retention_note("?range=7d", settings) == ""
    assert retention_note(custom(60), settings) == ""  # 1h windows (90 days) and headlines (90 days) cover it
    note = retention_note(custom(120), settings)  # 24h windows, kept 100 days; headlines 90 days
    assert "24h windows are kept 100d" in note and "headlines are kept 90d" in note and "MOODWIRE_STORE_KEEP" in note


def test_a_view_with_more_headlines_than_it_reads_says_it_shows_the_newest(store, monkeypatch):
    from dashboards.pages import topic

    engine, _ = store
    monkeypatch.setattr(topic, "LIMIT", 3)
    frame, note = headlines_frame(engine, "?range=24h&topic=Macro")
    assert len(frame) == 3 and note.startswith("the 3 newest headlines from")
    assert list(frame["published_at"]) == sorted(frame["published_at"], reverse=True)


def test_the_rules_that_judge_a_key_are_drawn_on_the_window_they_read(store):
    from alerts.rules import RuleFile
    from moodwire.spans import parse_windows

    engine, _ = store
    rules = RuleFile.model_validate({"rules": [
        {"name": "macro-negative", "topics": ["Macro"], "window": "1h", "when": {"mean_below": -0.3},
         "recover": -0.1, "min_count": 50},
        {"name": "energy-only", "topics": ["Energy | Oil"], "window": "5m", "when": {"mean_below": -0.5}}]}).rules
    settings = type("S", (), {"windows": parse_windows("5m,1h/5m,24h/1h")})()
    fig, _ = topic_view(engine, "?range=24h&topic=Macro", settings, rules)
    assert "1h windows; judged by macro-negative" in fig.layout.title.text  # the rule's window, not the range's
    lines = {(s.y0, s.line.dash) for s in fig.layout.shapes if s.name == "rule"}
    assert lines == {(-0.3, "dash"), (-0.1, "dot")}
    [thin] = [t for t in fig.data if t.name == "under min_count 50: not judged"]
    assert len(thin.x) > 0
    plain, _ = topic_view(engine, "?range=24h&topic=Earnings", settings, rules)  # no rule judges it
    assert not [s for s in plain.layout.shapes if s.name == "rule"] and "judged" not in plain.layout.title.text


def test_an_episode_keeps_the_headlines_that_fired_it_and_counts_its_own_deliveries(tmp_path):
    from alerts.outbox import record_event
    from alerts.routing import Destination
    from dashboards import components, data
    from moodwire.records import Evidence

    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    s = seed(engine)
    fired = s["alert"]
    later = [Evidence(id="later", title="First Republic shares slide", url="https://news.example/fr", score=-0.8,
                      published_at=fired.starts_at + timedelta(hours=2))]
    hooks = [Destination(name, "route", ("rule", "topic"), timedelta(0), timedelta(0), timedelta(hours=4))
             for name in ("hook", "slack")]
    ended = fired.starts_at + timedelta(hours=3)
    record_event(engine, fired.model_copy(update={"seq": 2, "status": "resolved", "evidence": later, "ends_at": ended,
                                                  "window_start": ended - timedelta(hours=1), "window_end": ended}),
                 hooks)
    again = fired.starts_at + timedelta(hours=5)  # a new episode of the same rule and key
    record_event(engine, fired.model_copy(update={"seq": 3, "starts_at": again, "evidence": later}), hooks[:1])
    episodes = data.alert_episodes(engine)
    first = episodes[(episodes["fingerprint"] == "fp-macro") & (episodes["starts_at"] == fired.starts_at)].iloc[0]
    assert [e["title"] for e in first["fired_evidence"]] == [e.title for e in fired.evidence]
    assert first["delivery"] == "hook: 2 pending; slack: 1 pending"  # its two events; not the next episode's
    card = str(components.alert_card(first))
    assert "Fired on:" in card and "First Republic shares slide" in card  # the seed's event kept no window
    assert f"Resolved on the {fired.window} window {ended - timedelta(hours=1):%Y-%m-%d %H:%M} UTC to " \
           f"{ended:%Y-%m-%d %H:%M} UTC:" in card
    second = episodes[episodes["starts_at"] == again].iloc[0]
    assert second["delivery"] == "hook: 1 pending"


def test_headlines_come_25_a_page_with_links_keeping_the_view(store):
    from dashboards.pages.topic import PAGE_SIZE, headline_page, view_revision

    engine, _ = store
    search = "?range=24h&topic=Macro"
    frame, _ = headlines_frame(engine, search)
    assert len(frame) > 2 * PAGE_SIZE
    rows, pager = headline_page(frame, search)
    assert list(rows["id"]) == list(frame["id"][:PAGE_SIZE])
    assert f"headlines 1–25 of {len(frame)}" in str(pager) and "hpage=2" in str(pager) and "newer" not in str(pager)
    rows2, pager2 = headline_page(frame, search + "&hpage=2")
    assert list(rows2["id"]) == list(frame["id"][PAGE_SIZE:2 * PAGE_SIZE]) and "hpage=1" in str(pager2)
    last, _ = headline_page(frame, search + "&hpage=999")  # past the end: the last page
    assert list(last["id"]) == list(frame["id"][-len(last):]) and 0 < len(last) <= PAGE_SIZE
    assert view_revision(search + "&hpage=2") == view_revision(search)  # paging keeps the chart's zoom
    assert "hpage" not in query(pick_search(ids.CLEAR_PICK, search + "&hpage=3&from=a&to=b", None, None))
