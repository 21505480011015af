"""Topic: sentiment trend with its confidence band over volume, alert periods on the chart, and
the headlines of the interval clicked or dragged on it (CSV export of what is shown)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from dashboards import components, data, figures, ids
from dashboards.state import query, time_range


def layout(q: dict) -> html.Div:
    return html.Div([
        html.H2(f"Topic: {q.get('topic', '(none chosen)')}", id="topic-title"),
        dcc.Graph(id=ids.TREND, config={"displaylogo": False}),
        html.Div(id=ids.TOPIC_ALERTS, className="topic-alerts"),
        html.Div([html.H3("Headlines"), html.Span(id=ids.HEADLINES_NOTE),
                  html.Button("Export CSV", id=ids.HEADLINES_CSV), dcc.Download(id=ids.HEADLINES_DOWNLOAD)]),
        html.Div(id=ids.HEADLINES),
    ])


def _interval(search, click, selected):
    rng = time_range(search)
    picked = figures.selected_interval(click, selected)
    if picked:
        start, end = (pd.Timestamp(x) for x in picked)
        start = start.tz_localize("UTC") if start.tzinfo is None else start
        end = end.tz_localize("UTC") if end.tzinfo is None else end
        return start.to_pydatetime(), end.to_pydatetime(), True
    return rng.start, rng.end, False


def topic_view(engine, search: str | None):
    """The trend figure and the list of alert periods of the URL's topic and range."""
    q, rng = query(search), time_range(search)
    topic = q.get("topic")
    if not topic:
        return figures.trend(pd.DataFrame(), pd.DataFrame()), "Pick a topic on the overview."
    windows = data.windows(engine, rng.window, rng, topic)
    alerts = data.alert_episodes(engine, rng, topic)
    periods = [html.Li(f"{a.rule}: {a.status} from {a.starts_at:%Y-%m-%d %H:%M}", className="alert-period")
               for a in alerts.itertuples()]
    note = html.Div([html.Strong(f"{len(alerts)} alert period(s) in range"), html.Ul(periods)]) if len(alerts) \
        else html.Div("No alerts in this range.")
    return figures.trend(windows, alerts, title=f"{topic}: mean sentiment ({rng.window} windows) and volume",
                         revision=search or ""), note


def headlines_frame(engine, search: str | None, click, selected) -> tuple[pd.DataFrame, str]:
    """The headlines of the clicked window or dragged range (else the whole range), and a note."""
    topic = query(search).get("topic")
    if not topic:
        return pd.DataFrame(), ""
    start, end, picked = _interval(search, click, selected)
    frame = data.headlines(engine, topic, start, end + timedelta(microseconds=1))
    note = (f"{len(frame)} headlines from {start:%Y-%m-%d %H:%M} to {end:%H:%M}"
            + (" (selected on the chart)" if picked else " (drag or click on the chart to narrow)"))
    return frame, note


def register(app, engine) -> None:
    @app.callback(Output(ids.TREND, "figure"), Output(ids.TOPIC_ALERTS, "children"),
                  Input(ids.URL, "search"), Input(ids.TICK, "n_intervals"))
    def refresh(search, _tick):
        return topic_view(engine, search)

    @app.callback(Output(ids.HEADLINES, "children"), Output(ids.HEADLINES_NOTE, "children"),
                  Input(ids.URL, "search"), Input(ids.TREND, "clickData"), Input(ids.TREND, "selectedData"),
                  Input(ids.TICK, "n_intervals"))
    def headlines(search, click, selected, _tick):
        frame, note = headlines_frame(engine, search, click, selected)
        return (components.headlines_table(frame) if note else ""), note

    @app.callback(Output(ids.HEADLINES_DOWNLOAD, "data"), Input(ids.HEADLINES_CSV, "n_clicks"),
                  State(ids.URL, "search"), State(ids.TREND, "clickData"), State(ids.TREND, "selectedData"),
                  prevent_initial_call=True)
    def export(_n, search, click, selected):
        frame, note = headlines_frame(engine, search, click, selected)
        if not note:
            return no_update
        topic = query(search)["topic"]
        return dcc.send_data_frame(frame.to_csv, f"moodwire-{topic.replace(' ', '_').replace('|', '')}.csv",
                                   index=False)
