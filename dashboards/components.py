"""Small layout pieces. Untrusted text (headlines, URLs) only ever becomes text children or an
http(s) href: Dash renders children as text, never as HTML."""

from __future__ import annotations

from urllib.parse import urlparse

import pandas as pd
from dash import dcc, html

from dashboards import ids
from dashboards.figures import fmt, label, when
from dashboards.state import to_search


def safe_href(url: str | None) -> str | None:
    if not url or not isinstance(url, str):
        return None
    parsed = urlparse(url.strip())
    return url.strip() if parsed.scheme in ("http", "https") and parsed.netloc else None


def headline_link(title: str, url: str | None):
    href = safe_href(url)
    return html.A(title, href=href, target="_blank", rel="noopener noreferrer") if href else html.Span(title)


def headlines_table(frame: pd.DataFrame) -> html.Table:
    """Headlines with their reading; a watchlist's (``headline_score`` present) show the reading
    toward the list's matched terms, what its windows count, and the headline's own beside it."""
    targeted = "headline_score" in frame.columns
    titles = ("published", "source", "sentiment", "score") + (("headline's own", "read toward") if targeted else ()) \
        + ("headline",)
    head = html.Thead(html.Tr([html.Th(h) for h in titles]))
    rows = []
    for r in frame.itertuples():
        cells = [html.Td(when(r.published_at)), html.Td(r.source),
                 html.Td(r.sentiment, className=f"s-{r.sentiment}"), html.Td(fmt(r.score, 2))]
        if targeted:
            cells += [html.Td(f"{r.headline_sentiment} {fmt(r.headline_score, 2)}",
                              className=f"s-{r.headline_sentiment} own"), html.Td(r.terms or "—")]
        rows.append(html.Tr(cells + [html.Td(headline_link(r.title, r.url))]))
    return html.Table([head, html.Tbody(rows)], className="headlines")


def paged(frame: pd.DataFrame, q: dict[str, str], key: str, size: int, path: str, noun: str,
          label_id: str) -> tuple[pd.DataFrame, html.Div]:
    """The rows of the page ``q[key]`` names (1 when unreadable, the last past the end) and the
    pager above them: "noun 26–50 of 197", links to the newer and older pages, the rest of the
    URL's state kept."""
    pages = max(1, -(-len(frame) // size))
    try:
        page = min(max(1, int(q.get(key, "1"))), pages)
    except ValueError:
        page = 1
    first = (page - 1) * size
    shown = frame.iloc[first:first + size]
    links = [html.Span(f"{noun} {first + 1}–{first + len(shown)} of {len(frame)}" if len(frame) else "",
                       id=label_id)]
    if page > 1:
        links.append(dcc.Link(" ← newer", href=path + to_search({**q, key: str(page - 1)}), id="newer"))
    if page < pages:
        links.append(dcc.Link(" older →", href=path + to_search({**q, key: str(page + 1)}), id="older"))
    return shown, html.Div(links, className="pager")


def action_id(action: str, a) -> dict:
    """A button that names its alert episode (fingerprint and start), not a place in the list: a
    new alert arriving between the page's render and the click cannot move it."""
    return {"type": ids.ALERT_ACTION, "action": action, "fingerprint": a.fingerprint,
            "starts": a.starts_at.isoformat()}


def _evidence(items: list) -> html.Ul:
    return html.Ul([html.Li([html.Span(f"{e.get('score', 0):+.2f} "), headline_link(e.get("title", ""), e.get("url"))])
                    for e in items])


def _pair(a) -> tuple | None:
    """The window of an episode's latest event (its resolution, once resolved), when stored."""
    start, end = getattr(a, "window_start", None), getattr(a, "window_end", None)
    return (start, end) if start is not None and end is not None and not pd.isna(start) and not pd.isna(end) else None


def _value(a, count: bool) -> str:
    if count:
        return f"{a.value:.0f} headlines, threshold {a.threshold:.0f}"
    return f"value {fmt(a.value)}, threshold {fmt(a.threshold)}"


def _window_text(window: tuple | None, span: str) -> str:
    return f" the {span} window {when(window[0])} to {when(window[1])}" if window else ""


def alert_card(a, counts: frozenset = frozenset()) -> html.Div:
    """One alert episode: the headlines that fired it (and, when a later event holds others,
    those of its latest window), its deliveries per receiver, the actions it still allows.
    ``counts``: the rules whose value is a number of headlines (``negative_count``)."""
    latest = a.evidence or []
    fired = getattr(a, "fired_evidence", None)
    fired = fired if isinstance(fired, list) and fired else latest
    status = a.status if a.status == "resolved" else "firing"
    acked = isinstance(a.acked_by, str)
    actions = [html.Span(f"acknowledged by {a.acked_by}  ", className="acked")] if acked else []
    if status == "firing":  # a resolved episode has nothing left to own or hold back
        if not acked:
            actions.append(html.Button("Acknowledge", id=action_id("ack", a), className="ack"))
        actions.append(html.Button("Silence 2 h", id=action_id("silence", a), className="silence"))
    ended = isinstance(a.ends_at, pd.Timestamp) and not pd.isna(a.ends_at)
    period = f"from {when(a.starts_at)} to {when(a.ends_at)}" if ended else f"since {when(a.starts_at)}"
    why = f" ({a.reason})" if isinstance(a.reason, str) and a.reason else ""  # a resolution the value did not earn
    value, window = _value(a, a.rule in counts), _pair(a)
    later = []  # the latest event's window: its own headlines, or the resolution's window and value
    if latest and [e.get("id") for e in latest] != [e.get("id") for e in fired]:
        heading = "Resolved on" if status == "resolved" else "Latest window"
        later = [html.Div(heading + _window_text(window, a.window) + ":", className="evidence-label"), _evidence(latest)]
    elif status == "resolved" and window:
        later = [html.Div("Resolved on" + _window_text(window, a.window) + f", {value}", className="evidence-label")]
    return html.Div([
        html.Div([html.Strong(f"{a.rule} on {label(a.topic)}"), html.Span(f" {status}", className=f"status-{status}"),
                  html.Span(f" · {a.severity} · {a.window} window · {value} · {period}{why}")]),
        html.Div("Fired on" + _window_text(getattr(a, "fired_window", None), a.window) + ":",
                 className="evidence-label"), _evidence(fired), *later,
        html.Div([html.Span(f"deliveries: {a.delivery}  ", className="deliveries"), *actions]),
    ], className=f"alert-card alert-{status}")
