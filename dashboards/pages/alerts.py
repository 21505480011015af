"""Alerts: firing and past alert episodes with their evidence headlines, delivery status, and
acknowledge / silence actions (written to the store; `moodwire notify` honours them); newest
first, ``PAGE_SIZE`` a page (the page is in the URL: ``?page=2``)."""

from __future__ import annotations

from datetime import datetime

from dash import ALL, Input, Output, State, callback_context, dcc, html, no_update

from dashboards import components, data, ids
from dashboards.auth import current_user
from dashboards.state import query, time_range

PAGE_SIZE = 25


def layout(q: dict) -> html.Div:
    return html.Div([html.H2("Alerts"), html.Div(id=ids.ACTION_NOTE), dcc.Store(id=ids.REVISION, data=0),
                     html.Div(id=ids.ALERT_LIST)])


def alerts_view(engine, search: str | None, rules=()):
    """This page's cards, and links to the pages before and after it (``rules``: the alert
    rules, so that a count rule's value reads as a number of headlines)."""
    episodes = data.alert_episodes(engine, time_range(search))
    if episodes.empty:
        return html.P("No alerts in this range.")
    shown, pager = components.paged(episodes, query(search), "page", PAGE_SIZE, "/alerts", "alerts", ids.ALERT_PAGE)
    counts = frozenset(r.name for r in rules if r.counts_headlines)
    return [pager] + [components.alert_card(a, counts) for a in shown.itertuples()]


def alert_action(engine, fingerprint: str, starts: str, action: str, user: str) -> str:
    """Acknowledge or silence the alert episode the button names, as the store has it now."""
    try:
        starts_at = datetime.fromisoformat(starts)
    except (TypeError, ValueError):
        return "That button names no alert; reload the page."
    a = data.episode(engine, fingerprint, starts_at)
    if a is None:
        return "That alert is no longer in the store (removed by retention); refreshed."
    if a["status"] == "resolved":
        return f"{a['rule']} on {a['topic']} has resolved since the page was drawn: nothing to {action_word(action)}."
    if action == "ack":
        done = data.acknowledge(engine, fingerprint, starts_at, user)
        return f"{a['rule']} on {a['topic']} acknowledged by {user}" if done else \
            f"{a['rule']} on {a['topic']} was already acknowledged"
    sid = data.silence_alert(engine, a["rule"], a["topic"], 2, user, "from the dashboard")
    return f"silenced {a['rule']} on {a['topic']} for 2 h (silence {sid})"


def action_word(action: str) -> str:
    return "acknowledge" if action == "ack" else "silence"


def register(app, engine, settings=None, rules=()) -> None:
    @app.callback(Output(ids.ALERT_LIST, "children"), Input(ids.URL, "search"), Input(ids.TICK, "n_intervals"),
                  Input(ids.REVISION, "data"))
    def refresh(search, _tick, _revision):
        return alerts_view(engine, search, rules)

    @app.callback(Output(ids.ACTION_NOTE, "children"), Output(ids.REVISION, "data"),
                  Input({"type": ids.ALERT_ACTION, "action": ALL, "fingerprint": ALL, "starts": ALL}, "n_clicks"),
                  State(ids.REVISION, "data"), prevent_initial_call=True)
    def act(clicks, revision):
        trigger = callback_context.triggered_id
        if not trigger or not any(clicks):
            return no_update, no_update
        note = alert_action(engine, trigger["fingerprint"], trigger["starts"], trigger["action"],
                            current_user() or "unknown")
        return note, (revision or 0) + 1
