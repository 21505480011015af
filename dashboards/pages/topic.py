"""Topic: sentiment trend with its confidence band over volume, alert periods on the chart, and
the headlines of the interval clicked or dragged on it, kept in the URL (CSV export of what is shown)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from dash import Input, Output, State, callback_context, dcc, html, no_update

from dashboards import components, data, figures, ids
from dashboards.export import csv_safe
from dashboards.state import PICK_FROM, PICK_TO, query, time_range, to_search


def layout(q: dict) -> html.Div:
    return html.Div([
        html.H2(_title(q.get("topic")), id="topic-title"),
        dcc.Graph(id=ids.TREND, config={"displaylogo": False}),
        html.Div(id=ids.TOPIC_ALERTS, className="topic-alerts"),
        html.Div([html.H3("Headlines"), html.Span(id=ids.HEADLINES_NOTE),
                  html.Button("Whole range", id=ids.CLEAR_PICK, title="forget the interval picked on the chart"),
                  html.Button("Export CSV", id=ids.HEADLINES_CSV), dcc.Download(id=ids.HEADLINES_DOWNLOAD)]),
        html.Div(id=ids.HEADLINES),
    ])


def _title(key: str | None) -> str:
    if not key:
        return "Topic: (none chosen)"
    return figures.label(key)


def _utc(value: str) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def picked_interval(search: str | None) -> tuple[datetime, datetime] | None:
    """The interval picked on the chart, kept in the URL (``from``/``to``) so a live refresh,
    a reload or a shared link shows the same headlines. Raises ValueError when unreadable."""
    q = query(search)
    if not q.get(PICK_FROM) and not q.get(PICK_TO):
        return None
    try:
        start, end = _utc(q[PICK_FROM]), _utc(q[PICK_TO])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"the link's chart selection (from={q.get(PICK_FROM)!r}, to={q.get(PICK_TO)!r}) "
                         "is not two ISO times") from exc
    return (start, end) if start <= end else (end, start)


def pick_search(trigger: str | None, search: str | None, click, selected):
    """The URL after an analyst drags a range or clicks a window on the chart (or clears the
    pick). A selection that vanishes by itself (a chart redraw) changes nothing: only the
    "Whole range" button forgets the pick."""
    q = query(search)
    q.pop(PAGE_KEY, None)  # a new pick starts at its first page of headlines
    if trigger == ids.CLEAR_PICK:
        q.pop(PICK_FROM, None)
        q.pop(PICK_TO, None)
    else:
        picked = figures.selected_interval(click if trigger == "clickData" else None,
                                           selected if trigger == "selectedData" else None)
        if not picked:
            return no_update
        start, end = sorted(_utc(x) for x in picked)
        q.update({PICK_FROM: start.isoformat(), PICK_TO: end.isoformat()})
    new = to_search(q)
    return new if new != (search or "") else no_update


PAGE_SIZE = 25  # headlines a page (the page in the URL: ``hpage``)
PAGE_KEY = "hpage"
LIMIT = 500  # headlines read (and exported as CSV) for one view


def headline_page(frame: pd.DataFrame, search: str | None):
    """The rows of the URL's page of headlines, and links to the pages before and after it."""
    return components.paged(frame, query(search), PAGE_KEY, PAGE_SIZE, "/topic", "headlines", "headlines-page")


def view_revision(search: str | None) -> str:
    """The chart's uirevision: the URL without the pick, so picking keeps the analyst's zoom."""
    q = query(search)
    for key in (PICK_FROM, PICK_TO, PAGE_KEY):
        q.pop(key, None)
    return to_search(q)


def judging(rules, key: str, specs) -> tuple[list, list | None]:
    """The rules that judge ``key`` on the mean, and the window spec they read (the first such
    rule's window, when the aggregator emits it): the chart then draws that window, so it shows
    what the alert saw."""
    mine = [r for r in rules if r.selects(key)]
    for r in mine:
        spec = [w for w in specs or [] if w.name == r.window]
        if spec:
            return [x for x in mine if x.window == r.window], spec
    return [], None


def topic_view(engine, search: str | None, settings=None, rules=()):
    """The trend figure (the picked interval shaded; the rules that judge the key drawn, on the
    window they read) and the list of alert periods of the URL's topic and range."""
    q, rng = query(search), time_range(search)
    topic = q.get("topic")
    if not topic:
        return figures.trend(pd.DataFrame(), pd.DataFrame(), empty="No topic chosen"), "Pick a topic on the overview."
    if not data.known(engine, topic):
        return (figures.trend(pd.DataFrame(), pd.DataFrame(), empty=f"No such topic or watchlist: {figures.label(topic)}"),
                html.Div([f"The store holds nothing for {figures.label(topic)!r}. ",
                          dcc.Link("Choose one on the overview", href="/")], id="unknown-topic"))
    specs = settings.windows if settings is not None else None
    shown, spec = judging(rules, topic, specs)
    windows, res = data.series(engine, rng, spec or specs, topic)
    alerts = data.alert_episodes(engine, rng, topic)
    periods = [html.Li(f"{a.rule}: fired {figures.when(a.starts_at)}, " + (
                   f"resolved {figures.when(a.ends_at)}" if a.status == "resolved" and not pd.isna(a.ends_at)
                   else "still firing"), className="alert-period") for a in alerts.itertuples()]
    note = html.Div([html.Strong(f"{len(alerts)} alert period(s) in range"), html.Ul(periods)]) if len(alerts) \
        else html.Div("No alerts in this range.")
    try:
        picked = picked_interval(search)
    except ValueError:
        picked = None  # the headlines note says why
    judged = f"; judged by {', '.join(r.name for r in shown)}" if shown else ""
    return figures.trend(windows, alerts, title=f"{figures.label(topic)}: mean sentiment ({res.window} windows"
                                                 f"{judged}) and volume",
                         revision=view_revision(search), picked=picked, rules=shown), note


def headlines_frame(engine, search: str | None) -> tuple[pd.DataFrame, str]:
    """The headlines of the picked interval (else the whole range), and a note."""
    topic = query(search).get("topic")
    if not topic:
        return pd.DataFrame(), ""
    rng = time_range(search)
    problem = ""
    try:
        picked = picked_interval(search)
    except ValueError as exc:
        picked, problem = None, f" — ignored {exc}"
    start, end = picked or (rng.start, rng.end)
    frame = data.headlines(engine, topic, start, end + timedelta(microseconds=1), limit=LIMIT)
    count = f"the {LIMIT} newest" if len(frame) == LIMIT else f"{len(frame)}"
    note = (f"{count} headlines from {figures.when(start)} to {figures.when(end)}"
            + (" (selected on the chart)" if picked else " (drag or click on the chart to narrow)") + problem)
    return frame, note


def register(app, engine, settings=None, rules=()) -> None:
    @app.callback(Output(ids.TREND, "figure"), Output(ids.TOPIC_ALERTS, "children"),
                  Input(ids.URL, "search"), Input(ids.TICK, "n_intervals"))
    def refresh(search, _tick):
        return topic_view(engine, search, settings, rules)

    @app.callback(Output(ids.URL, "search", allow_duplicate=True), Input(ids.TREND, "clickData"),
                  Input(ids.TREND, "selectedData"), Input(ids.CLEAR_PICK, "n_clicks"), State(ids.URL, "search"),
                  prevent_initial_call=True)
    def pick(click, selected, _clear, search):
        prop = callback_context.triggered[0]["prop_id"] if callback_context.triggered else ""
        trigger = ids.CLEAR_PICK if prop.startswith(ids.CLEAR_PICK + ".") else prop.rpartition(".")[2]
        return pick_search(trigger, search, click, selected)

    @app.callback(Output(ids.HEADLINES, "children"), Output(ids.HEADLINES_NOTE, "children"),
                  Input(ids.URL, "search"), Input(ids.TICK, "n_intervals"))
    def headlines(search, _tick):
        frame, note = headlines_frame(engine, search)
        if not note:
            return "", note
        shown, pager = headline_page(frame, search)
        return [pager, components.headlines_table(shown)] if len(frame) else "", note

    @app.callback(Output(ids.HEADLINES_DOWNLOAD, "data"), Input(ids.HEADLINES_CSV, "n_clicks"),
                  State(ids.URL, "search"), prevent_initial_call=True)
    def export(_n, search):
        frame, note = headlines_frame(engine, search)
        if not note:
            return no_update
        topic = query(search)["topic"]
        return dcc.send_data_frame(csv_safe(frame).to_csv,
                                   f"moodwire-{topic.replace(' ', '_').replace('|', '')}.csv", index=False)
