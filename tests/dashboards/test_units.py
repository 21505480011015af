"""Figure builders, the store query layer (SQLite and PostgreSQL) and sign-in helpers, on seeded rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import delete

from dashboards import components, data, figures
from dashboards.auth import _safe_next
from dashboards.passwords import hash_password, load_users, verify_password
from dashboards.components import safe_href
from moodwire.errors import DashboardError
from moodwire.store import (alert_acks, alert_events, notify_attempts, notify_batches, notify_outbox, open_store,
                            scored_news, silences, topic_windows)
from tests.dashboards.seed import seed


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = open_store(url)
    with engine.begin() as conn:  # the PostgreSQL server is shared by the session
        for t in (notify_attempts, notify_outbox, notify_batches, alert_events, silences, alert_acks, scored_news,
                  topic_windows):
            conn.execute(delete(t))
    return engine, seed(engine)


def test_windows_and_headlines_come_back_for_the_range(seeded):
    engine, s = seeded
    rng = data.TimeRange(s["end"] - timedelta(hours=2), s["end"])
    w = data.windows(engine, "5m", rng, "Macro")
    assert len(w) == 24 and w["start"].min() >= rng.start and str(w["start"].dt.tz) == "UTC"
    expected = [i for i in s["items"] if i.topic == "Macro" and rng.start <= i.published_at < rng.end]
    h = data.headlines(engine, "Macro", rng.start, rng.end)
    assert sorted(h["id"]) == sorted(i.id for i in expected)
    assert int(w["count"].sum()) == len(expected)  # 5-minute windows tile the range
    assert set(data.topics(engine)) == {"Macro", "Earnings", "Energy | Oil", "watchlist:US regional banks"}
    listed = data.headlines(engine, "watchlist:US regional banks", rng.start, rng.end)
    matched = {i.id: i for i in s["items"] if i.watchlists and rng.start <= i.published_at < rng.end}
    assert sorted(listed["id"]) == sorted(matched)
    for row in listed.itertuples():  # the list's reading, the headline's own beside it, the terms read
        item = matched[row.id]
        assert (row.score, row.headline_score, row.terms) == (item.targets["US regional banks"].score, item.score, "SVB")


@pytest.mark.parametrize("hours", [1, 6, 48, 24 * 90])
def test_overview_counts_equal_an_independent_count_of_the_stored_items(seeded, hours):
    """Distinct items and their negative share per topic and watchlist, whatever window the
    range draws (1h windows slide every 5 minutes: summing them counted each item 12 times)."""
    from sqlalchemy import select

    engine, s = seeded
    rng = data.TimeRange(s["end"] - timedelta(hours=hours), s["end"])
    table = figures.overview_table(data.series(engine, rng)[0], data.alert_episodes(engine, rng),
                                   data.totals(engine, rng)).set_index("topic")
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(select(scored_news)).mappings().all())
    rows["published_at"] = pd.to_datetime(rows["published_at"], utc=True)
    inside = rows[(rows["published_at"] >= rng.start) & (rows["published_at"] < rng.end)]
    expected = {t: g for t, g in inside.groupby("topic")}
    listed = inside[inside["watchlists"].map(lambda w: bool(w) and "US regional banks" in w)]
    # a watchlist counts each headline's reading toward the list's terms (stored in targets)
    expected["watchlist:US regional banks"] = listed.assign(
        score=[t["US regional banks"]["score"] for t in listed["targets"]],
        sentiment=[t["US regional banks"]["sentiment"] for t in listed["targets"]])
    assert set(table.index) == set(expected)
    for key, g in expected.items():
        assert table.at[key, "volume"] == len(g), key
        assert table.at[key, "negative_share"] == round(float((g["sentiment"] == "negative").mean()), 3), key
        assert table.at[key, "mean"] == pytest.approx(float(g["score"].mean()), abs=1e-3), key
        assert table.at[key, "kind"] == ("watchlist" if key.startswith("watchlist:") else "topic")


def test_alert_episodes_carry_evidence_delivery_and_acknowledgement(seeded):
    engine, s = seeded
    episodes = data.alert_episodes(engine, data.TimeRange(s["end"] - timedelta(hours=24), s["end"]))
    assert list(episodes["topic"]) == ["Macro", "Energy | Oil"]  # newest first
    macro = episodes.iloc[0]
    assert macro["status"] == "firing" and len(macro["evidence"]) == 3 and macro["delivery"] == "hook: 1 pending"
    assert data.acknowledge(engine, "fp-macro", macro["starts_at"].to_pydatetime(), "ana")
    assert not data.acknowledge(engine, "fp-macro", macro["starts_at"].to_pydatetime(), "bob")
    assert data.alert_episodes(engine).iloc[0]["acked_by"] == "ana"
    energy = episodes.iloc[1]  # resolved for lack of items: the card says so next to the value
    assert energy["reason"] == "2 items in the window, under min_count 3: not judged" and pd.isna(macro["reason"])
    card = str(components.alert_card(energy))
    assert "(2 items in the window, under min_count 3: not judged)" in card
    assert "Acknowledge" not in card and "Silence" not in card  # resolved: nothing to act on
    # Only episodes overlapping the range: the Energy one ended 4 hours before the end.
    recent = data.alert_episodes(engine, data.TimeRange(s["end"] - timedelta(hours=2), s["end"]))
    assert list(recent["topic"]) == ["Macro"]
    sid = data.silence_alert(engine, "negative-turn", "Macro", 2, "ana")
    assert list(data.active_silences(engine)["id"]) == [sid]


def test_the_overview_table_and_figures_are_built_from_frames(seeded):
    engine, s = seeded
    rng = data.TimeRange(s["end"] - timedelta(hours=6), s["end"])
    w = data.windows(engine, "1h", rng)
    table = figures.overview_table(w, data.alert_episodes(engine, rng), now=s["end"])
    assert table.iloc[0]["topic"] == "Macro" and table.iloc[0]["firing"] == 1
    macro = w[w["topic"] == "Macro"].sort_values("start")
    complete = macro[macro["end"] <= s["end"]]  # the windows still filling at the range's end are apart
    assert 0 < len(complete) < len(macro)
    assert table.iloc[0]["latest"] == round(float(complete.iloc[-1]["mean_score"]), 3)
    assert table.iloc[0]["latest_items"] == int(complete.iloc[-1]["count"])
    filling = macro.iloc[-1]
    assert table.iloc[0]["filling"] == f"{filling['mean_score']:+.3f} from {int(filling['count'])} so far"
    assert table.iloc[0]["mean"] == round(float(macro["mean_score"].mean()), 3)  # no totals given: the windows'
    items = [i for i in s["items"] if i.topic == "Macro" and rng.start <= i.published_at < rng.end]
    counted = figures.overview_table(w, data.alert_episodes(engine, rng), data.totals(engine, rng))
    macro_row = counted[counted["topic"] == "Macro"].iloc[0]  # with totals: every headline once
    assert macro_row["volume"] == len(items)
    assert macro_row["mean"] == pytest.approx(sum(i.score for i in items) / len(items), abs=1e-3)
    heat = figures.heatmap(w)
    assert heat.data[0].type == "heatmap" and list(heat.data[0].y) == ["Earnings", "Energy | Oil", "Macro",
                                                                       "watchlist: US regional banks"]
    fig = figures.trend(macro, data.alert_episodes(engine, rng, "Macro"), "Macro")
    names = [t.name for t in fig.data]
    assert names == ["95% interval", "mean sentiment", "items", "alert periods", "alerts"]
    assert not fig.layout.shapes  # periods are one trace, not a shape each
    [periods] = [t for t in fig.data if t.name == "alert periods"]
    assert periods.fill == "toself" and len(periods.x) == 6 * len(data.alert_episodes(engine, rng, "Macro"))
    band = figures.with_interval(macro)
    assert ((band["low"] <= band["mean_score"]) & (band["mean_score"] <= band["high"])).all()


def test_lines_and_the_band_break_where_no_window_was_written():
    hour = pd.Timedelta(hours=1)
    starts = pd.to_datetime(["2026-11-20 00:00", "2026-11-20 01:00", "2026-11-22 00:00", "2026-11-22 01:00"], utc=True)
    w = pd.DataFrame({"topic": "Financials", "start": starts, "end": starts + hour, "count": [5, 6, 4, 3],
                      "mean_score": [-0.9, -0.95, -0.97, -0.9], "sum_sq": [4.1, 5.5, 3.8, 2.5],
                      "negative_share": [1.0, 1.0, 1.0, 1.0]})
    fig = figures.trend(w, pd.DataFrame())
    [line] = [t for t in fig.data if t.name == "mean sentiment"]
    ys = list(line.y)
    assert len(ys) == 5 and pd.isna(ys[2]) and not any(pd.isna(y) for y in ys[:2] + ys[3:])
    [band] = [t for t in fig.data if t.name == "95% interval"]
    assert band.fill == "toself" and list(band.y).count(None) == 2  # two closed shapes, none over the gap
    xs = list(band.x)
    first, second = xs[:xs.index(None)], xs[xs.index(None) + 1:-1]
    assert max(first) < min(second)
    assert len(figures.with_gaps(w.iloc[:2])) == 2  # adjacent windows: nothing added


def test_empty_charts_and_tables_say_why():
    for fig in (figures.trend(pd.DataFrame(), pd.DataFrame()), figures.heatmap(pd.DataFrame())):
        assert [a.text for a in fig.layout.annotations] == ["No news in this range"]
    firing = pd.DataFrame({"topic": ["watchlist:US regional banks"], "firing": [1]})
    quiet = pd.DataFrame(columns=["topic", "start", "count", "mean_score", "negative_share"])
    table = figures.overview_table(quiet, firing)  # a firing key is listed with no news in the range
    assert list(table["topic"]) == ["watchlist:US regional banks"] and table.iloc[0]["firing"] == 1


def test_a_custom_range_that_cannot_be_read_is_said():
    from dashboards.state import range_problem

    assert range_problem("?range=custom&start=yesterday&end=now").startswith(
        "Custom range: the start 'yesterday' is not an ISO time")
    assert "both a start and an end" in range_problem("?range=custom&start=2026-11-20T00:00")
    assert "start must come before the end" in range_problem("?range=custom&start=2026-11-21&end=2026-11-20")
    assert range_problem("?range=custom&start=2026-11-20&end=2026-11-21") == range_problem("?range=7d") == ""


def test_interval_of_a_window_matches_a_direct_computation():
    frame = pd.DataFrame({"count": [4], "mean_score": [0.5], "sum_sq": [0.25 * 2 + 0.81 + 0.01]})  # .5,.5,.9,.1
    out = figures.with_interval(frame)
    values = pd.Series([0.5, 0.5, 0.9, 0.1])
    se = values.std(ddof=1) / 2
    assert out["low"][0] == pytest.approx(0.5 - 1.96 * se) and out["high"][0] == pytest.approx(0.5 + 1.96 * se)


def test_a_dragged_range_or_a_clicked_window_selects_an_interval():
    assert figures.selected_interval(None, {"range": {"x": ["2026-11-20 09:00", "2026-11-20 10:00"]}}) == \
        ("2026-11-20 09:00", "2026-11-20 10:00")
    click = {"points": [{"customdata": ["2026-11-20 09:00:00+00:00", "2026-11-20 10:00:00+00:00", 12]}]}
    assert figures.selected_interval(click, None) == ("2026-11-20 09:00:00+00:00", "2026-11-20 10:00:00+00:00")
    assert figures.selected_interval(None, None) is None


def test_a_custom_range_with_an_offset_is_the_same_instants_on_both_stores(seeded):
    engine, s = seeded
    end = s["end"]
    utc = data.TimeRange.parse("custom", (end - timedelta(hours=2)).isoformat(), end.isoformat())
    shifted = data.TimeRange.parse("custom",
                                   (end - timedelta(hours=2)).astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
                                   end.astimezone(timezone(timedelta(hours=-4))).isoformat())
    assert (shifted.start, shifted.end) == (utc.start, utc.end) and shifted.start.utcoffset() == timedelta(0)
    assert data.windows(engine, "5m", shifted).equals(data.windows(engine, "5m", utc))
    assert len(data.windows(engine, "5m", shifted)) > 0


def test_time_ranges():
    now = pd.Timestamp("2026-11-20 12:00", tz="UTC").to_pydatetime()
    assert data.resolution(data.TimeRange.parse("1h", now=now)) == data.Resolution("5m", timedelta(minutes=5))
    assert data.TimeRange.parse("7d", now=now).start == now - timedelta(days=7)
    # windows side by side, never sliding past each other: one headline is one point, one bar
    for name, window, spacing in (("24h", "1h", timedelta(hours=1)), ("7d", "1h", timedelta(hours=1))):
        assert data.resolution(data.TimeRange.parse(name, now=now)) == data.Resolution(window, spacing)
    fortnight = data.TimeRange(now - timedelta(days=14), now)
    assert data.resolution(fortnight) == data.Resolution("24h", timedelta(hours=24))
    custom = data.TimeRange.parse("custom", "2026-11-19T00:00", "2026-11-19T02:00", now=now)
    assert (custom.start.hour, custom.end.hour, data.resolution(custom).window) == (0, 2, "5m")
    assert data.TimeRange.parse("custom", "garbage", "2026-11-19", now=now).start == now - timedelta(hours=24)


@pytest.mark.parametrize("days, window", [(1 / 24, "5m"), (1, "1h"), (7, "1h"), (90, "24h"), (365, "24h")])
def test_a_series_never_carries_more_than_max_points_whatever_the_range(days, window):
    now = pd.Timestamp("2026-11-20 12:07", tz="UTC").to_pydatetime()
    rng = data.TimeRange(now - timedelta(days=days), now)
    res = data.resolution(rng)
    starts = res.starts(rng)
    assert res.window == window and 0 < len(starts) <= data.MAX_POINTS
    assert all(rng.start <= s < rng.end for s in starts) and starts == sorted(starts)
    step = {"5m": 300, "1h": 300, "24h": 3600}[window]  # the window's step: starts are window starts
    assert all(s.timestamp() % step == 0 for s in starts)
    assert (starts[0] - rng.start) < res.spacing and (rng.end - starts[-1]) <= res.spacing


def test_passwords_links_and_redirects():
    stored = hash_password("s3cret", iterations=1000)
    assert verify_password("s3cret", stored) and not verify_password("s3cret ", stored)
    assert not verify_password("x", "not-a-hash")
    assert [safe_href(u) for u in ("https://a.example/x", "javascript:alert(1)", "data:text/html,x", "/rel", None)] == \
        ["https://a.example/x", None, None, None, None]
    assert [_safe_next(t) for t in ("/alerts?x=1", "https://evil.example", "//evil.example", None)] == \
        ["/alerts?x=1", "/", "/", "/"]


def test_a_bad_users_file_says_what_to_fix(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  ana: plaintext\n")
    with pytest.raises(DashboardError, match="users.ana: not a password hash"):
        load_users(path)
    path.write_text("people: {}\n")
    with pytest.raises(DashboardError, match="needs 'users:'"):
        load_users(path)


def test_behind_a_proxy_the_trusted_header_signs_in_and_its_absence_does_not(tmp_path):
    from dashboards.app import create_app
    from moodwire.settings import load_settings

    settings = load_settings(environ={"MOODWIRE_HOME": str(tmp_path), "MOODWIRE_DASHBOARD_AUTH_HEADER": "X-Remote-User"})
    app = create_app(settings, open_store(f"sqlite:///{tmp_path / 's.db'}"), users={})
    client = app.server.test_client()
    assert client.get("/alerts").status_code == 302
    assert client.post("/_dash-update-component", json={}).status_code == 401
    page = client.get("/alerts", headers={"X-Remote-User": "ana"})
    assert page.status_code == 200 and b"_dash-renderer" in page.data


def test_the_dashboard_serves_prometheus_metrics(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from dashboards.app import create_app
    from moodwire.settings import load_settings

    settings = load_settings(environ={"MOODWIRE_HOME": str(tmp_path)})
    app = create_app(settings, open_store(f"sqlite:///{tmp_path / 's.db'}"), users={})
    client = app.server.test_client()
    assert client.get("/alerts").status_code == 302
    text = client.get("/metrics").get_data(as_text=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("moodwire_dashboard_requests_total", (("kind", "page"), ("status", "302")))] == 1


def test_totals_count_from_the_shortest_kept_window_that_keeps_the_sum_small():
    now = datetime.now(timezone.utc)
    keep = {"5m": timedelta(days=30), "1h": timedelta(days=90), "24h": timedelta(days=730)}.get

    def chosen(days):
        return data.counting(None, data.TimeRange(now - timedelta(days=days), now), keep)

    assert chosen(1) == ("5m", timedelta(minutes=5)) and chosen(7) == ("5m", timedelta(minutes=5))
    assert chosen(20) == ("1h", timedelta(hours=1))    # 5,760 five-minute windows a key: too many to sum
    assert chosen(60) == ("1h", timedelta(hours=1))    # 5-minute windows are kept 30 days only
    assert chosen(200) == ("24h", timedelta(days=1))   # 1-hour windows are kept 90 days only
    assert data.counting(None, data.TimeRange(now - timedelta(days=900), now), keep) == ("24h", timedelta(days=1))


def test_firing_counts_agree_with_the_alert_episodes(seeded):
    engine, s = seeded
    for hours in (1, 24):
        rng = data.TimeRange(s["end"] - timedelta(hours=hours), s["end"])
        episodes = data.alert_episodes(engine, rng)
        expected = episodes[episodes["status"] == "firing"].groupby("topic").size().to_dict()
        assert data.firing(engine, rng).set_index("topic")["firing"].to_dict() == expected


def test_the_csv_export_neutralises_cells_a_spreadsheet_would_run():
    from dashboards.export import csv_safe

    frame = pd.DataFrame({"title": ["=HYPERLINK(\"http://evil\")", "+1 bank", "-2% slide", "@SUM(A1)", "\tx", "\rx",
                                    "Banks rally"], "score": [-0.5, 0.1, -0.9, 0.0, 0.2, 0.3, 0.4]})
    safe = csv_safe(frame)
    assert list(safe.title) == ["'=HYPERLINK(\"http://evil\")", "'+1 bank", "'-2% slide", "'@SUM(A1)", "'\tx", "'\rx",
                                "Banks rally"]
    assert list(safe.score) == list(frame.score)  # numbers, negative ones too, untouched
    assert list(frame.title)[0].startswith("=")  # the page's own frame is not changed


def test_the_overview_ranks_by_evidence_and_keeps_a_filling_window_apart():
    # The demo's case: one headline at -0.99 (Dividend) and three on Currencies ranked above a
    # bank watchlist of twenty at -0.5; a 24h window ending tomorrow shown as the latest value.
    now = pd.Timestamp("2026-12-05 12:00", tz="UTC").to_pydatetime()
    day = pd.Timedelta(hours=24)
    rows = []
    for key, count, mean in [("Dividend", 1, -0.99), ("Currencies", 3, -0.8), ("watchlist:banks", 20, -0.5),
                             ("Earnings", 30, 0.2), ("watchlist:crypto", 8, -0.1)]:
        rows.append({"topic": key, "start": now - 2 * day, "end": now - day, "count": count, "mean_score": mean,
                     "negative_share": 0.5})
    rows.append({"topic": "watchlist:banks", "start": now - pd.Timedelta(hours=1), "end": now + pd.Timedelta(hours=23),
                 "count": 1, "mean_score": -0.99, "negative_share": 1.0})
    w = pd.DataFrame(rows)
    totals = pd.DataFrame({"topic": ["Dividend", "Currencies", "watchlist:banks", "Earnings", "watchlist:crypto"],
                           "items": [1, 3, 21, 30, 8], "mean": [-0.99, -0.8, -0.523, 0.2, -0.1],
                           "negative_share": [1.0, 0.7, 0.6, 0.1, 0.3]})
    firing = pd.DataFrame({"topic": ["watchlist:crypto"], "firing": [1]})
    table = figures.overview_table(w, firing, totals, now=now)
    assert list(table["topic"]) == ["watchlist:crypto", "watchlist:banks", "Earnings", "Currencies", "Dividend"]
    banks = table[table["topic"] == "watchlist:banks"].iloc[0]
    assert banks["latest"] == -0.5 and banks["latest_items"] == 20  # the complete window, not the filling one
    assert banks["filling"] == "-0.990 from 1 so far"
    assert banks["weighted"] == round(-0.523 * 21 / 26, 3)
    dividend = table[table["topic"] == "Dividend"].iloc[0]
    assert dividend["weighted"] == round(-0.99 / 6, 3) and dividend["filling"] == ""
    # a replay fills windows long after their wall-clock end: not final yet is still filling too
    replayed = w.assign(end=w["end"] - pd.Timedelta(days=30), final=[True] * 5 + [False])
    banks = figures.overview_table(replayed, firing, totals, now=now).set_index("topic").loc["watchlist:banks"]
    assert banks["latest"] == -0.5 and banks["filling"] == "-0.990 from 1 so far"


def test_the_heat_map_writes_each_cells_count_and_leaves_no_news_grey_not_neutral():
    starts = pd.to_datetime(["2026-12-05 00:00", "2026-12-05 01:00", "2026-12-05 02:00"], utc=True)
    w = pd.DataFrame({"topic": ["Macro", "Macro", "Earnings"], "start": [starts[0], starts[1], starts[2]],
                      "count": [3, 0, 1], "mean_score": [-0.5, 0.0, 0.2], "negative_share": [0.6, 0.0, 0.0]})
    fig = figures.heatmap(w)
    [heat] = fig.data
    macro = list(heat.y).index("Macro")
    assert heat.z[macro][0] == -0.5 and heat.text[macro][0] == "3"
    assert pd.isna(heat.z[macro][1]) and heat.text[macro][1] == ""  # a window of no headlines: no mean
    assert pd.isna(heat.z[macro][2])  # and none written at all
    assert fig.layout.plot_bgcolor == "#c8c8c8" and "grey: none" in fig.layout.title.text


def test_an_alert_card_writes_times_one_way_and_a_threshold_not_a_versus():
    from types import SimpleNamespace

    from dashboards.components import alert_card

    def text(node) -> str:
        children = getattr(node, "children", node)
        if isinstance(children, (list, tuple)):
            return "".join(text(c) for c in children)
        return str(children) if children is not None and not hasattr(children, "children") else (
            text(children) if children is not None else "")

    base = dict(rule="watchlist-negative", topic="watchlist:US regional banks", severity="critical", window="24h",
                value=-0.52, threshold=-0.4, starts_at=pd.Timestamp("2026-12-05 15:00", tz="UTC"), reason=None,
                evidence=[], fired_evidence=[], acked_by=None, delivery="sent", fingerprint="f")
    fired_window = (pd.Timestamp("2026-12-04 15:00", tz="UTC"), pd.Timestamp("2026-12-05 15:00", tz="UTC"))
    resolved = text(alert_card(SimpleNamespace(
        **base, status="resolved", ends_at=pd.Timestamp("2026-12-06 03:00", tz="UTC"), fired_window=fired_window,
        window_start=pd.Timestamp("2026-12-05 03:00", tz="UTC"), window_end=pd.Timestamp("2026-12-06 03:00", tz="UTC"))))
    assert "watchlist-negative on watchlist: US regional banks" in resolved
    assert "value -0.520, threshold -0.400 · from 2026-12-05 15:00 UTC to 2026-12-06 03:00 UTC" in resolved
    # why it fired and why it resolved: each with its window
    assert "Fired on the 24h window 2026-12-04 15:00 UTC to 2026-12-05 15:00 UTC:" in resolved
    assert "Resolved on the 24h window 2026-12-05 03:00 UTC to 2026-12-06 03:00 UTC, value -0.520" in resolved
    firing = text(alert_card(SimpleNamespace(**base, status="firing", ends_at=pd.NaT, fired_window=None,
                                             window_start=None, window_end=None)))
    assert "since 2026-12-05 15:00 UTC" in firing and " vs " not in firing and "Fired on:" in firing
    early = text(alert_card(SimpleNamespace(**{**base, "rule": "watchlist-early", "value": 3.0, "threshold": 3.0},
                                            status="firing", ends_at=pd.NaT, fired_window=None, window_start=None,
                                            window_end=None), frozenset({"watchlist-early"})))
    assert "24h window · 3 headlines, threshold 3 · since" in early
