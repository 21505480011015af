"""Overview: every topic and watchlist at a glance for the chosen range (filter the kind column
to see one of them), and a key × time heat map."""

from __future__ import annotations

from dash import Input, Output, dash_table, dcc, html

from dashboards import data, figures, ids
from dashboards.state import query, time_range, to_search

COLUMNS = [{"name": "topic or watchlist", "id": "topic", "presentation": "markdown"}, {"name": "kind", "id": "kind"},
           {"name": "mean (range)", "id": "mean"}, {"name": "weighted mean", "id": "weighted"},
           {"name": "latest complete window", "id": "latest"}, {"name": "its headlines", "id": "latest_items"},
           {"name": "window still filling", "id": "filling"}, {"name": "change", "id": "change"},
           {"name": "headlines", "id": "volume"}, {"name": "negative share", "id": "negative_share"},
           {"name": "firing alerts", "id": "firing"}]
# What each column is, on hover over its header: no number on the page without its definition.
TOOLTIPS = {
    "topic": "A topic of the model, or a risk team's watchlist; the link opens its chart and headlines.",
    "kind": "topic (the model's) or watchlist (MOODWIRE_WATCHLISTS, e.g. config/watchlists.example.yaml)",
    "mean": "Mean sentiment score (-1 negative … +1 positive) of every headline in the range, each counted once.",
    "weighted": (f"The range's mean shrunk toward 0 by its headline count, mean × n / (n + {figures.EVIDENCE_MIN}): one "
                 "headline at -0.99 weighs -0.17, twenty at -0.5 weigh -0.4. The table ranks by it, firing keys "
                 f"first and keys with under {figures.EVIDENCE_MIN} headlines (greyed) last."),
    "latest": "Mean sentiment of the newest complete window in the range (the chart's window size).",
    "latest_items": "How many headlines that window holds: a mean of one headline is one opinion.",
    "filling": "The window still filling (it ends after now): its mean so far and from how many headlines.",
    "change": "Latest complete window's mean minus the first window's mean in the range.",
    "volume": "Headlines in the range, each counted once.",
    "negative_share": "Share of the range's headlines the model read as negative.",
    "firing": "Alerts firing now on this key (listed whatever the range holds).",
}


def layout(query: dict) -> html.Div:
    return html.Div([
        html.H2("Overview"),
        html.Div(id=ids.OVERVIEW_NOTE, className="overview-note"),
        dash_table.DataTable(id=ids.OVERVIEW_TABLE, columns=COLUMNS, data=[], sort_action="native",
                             tooltip_header=TOOLTIPS, tooltip_delay=200, tooltip_duration=None,
                             filter_action="native", export_format="csv", export_headers="display",
                             markdown_options={"link_target": "_self"},
                             style_cell={"textAlign": "left", "padding": "4px"},
                             style_data_conditional=[
                                 {"if": {"filter_query": f"{{volume}} < {figures.EVIDENCE_MIN} && {{firing}} = 0"},
                                  "color": "#999"},
                                 {"if": {"filter_query": "{firing} > 0"}, "backgroundColor": "#fdecea"}]),
        dcc.Graph(id=ids.HEATMAP, config={"displaylogo": False}),
    ])


def _topic_link(topic: str, q: dict[str, str]) -> str:
    """A markdown link to the topic's page keeping the rest of the page state (range, ...)."""
    label = figures.label(topic).replace("[", "\\[").replace("]", "\\]")
    return f"[{label}](/topic{to_search({**{k: v for k, v in q.items() if k != 'topic'}, 'topic': topic})})"


def overview_view(engine, search: str | None, settings=None):
    """The table rows (topic as a link keeping the range) and the heat map for the URL's range
    (``settings``: the windows and retention; default: the settings' defaults)."""
    rng = time_range(search)
    specs, kept = (settings.windows, settings.retention.window) if settings is not None else (None, None)
    windows, _ = data.series(engine, rng, specs, columns=data.OVERVIEW)
    alerts = data.firing(engine, None)  # firing now: listed whatever the range holds
    table = figures.overview_table(windows, alerts, data.totals(engine, rng, specs, kept))
    q = query(search)
    table["topic"] = [_topic_link(t, q) for t in table["topic"]]
    return table.to_dict("records"), figures.heatmap(windows)


def empty_note(rows: list, search: str | None) -> str:
    """Said above the table when the range holds no news (the keys listed then, if any, are
    those with an alert firing now)."""
    if any(r.get("volume") or r.get("latest_items") for r in rows):
        return ""
    rng = time_range(search)
    firing = " The keys listed have an alert firing now." if rows else ""
    return (f"No news in this range ({rng.start:%Y-%m-%d %H:%M} to {rng.end:%Y-%m-%d %H:%M} UTC): "
            f"choose a longer range, or a custom one.{firing}")


def register(app, engine, settings=None, rules=()) -> None:
    @app.callback(Output(ids.OVERVIEW_TABLE, "data"), Output(ids.HEATMAP, "figure"), Output(ids.OVERVIEW_NOTE, "children"),
                  Input(ids.URL, "search"), Input(ids.TICK, "n_intervals"))
    def refresh(search, _tick):
        rows, heat = overview_view(engine, search, settings)
        return rows, heat, empty_note(rows, search)
