"""``moodwire dashboard``: the Dash app — layout shell, URL state, page routing. Pages live in
``dashboards.pages``; data access in ``dashboards.data``; figures in ``dashboards.figures``.

``create_app(settings, engine, users)`` builds everything; nothing touches the store at import.
"""

from __future__ import annotations

from dash import Dash, Input, Output, State, callback_context, dcc, html, no_update
from prometheus_client import CollectorRegistry

from dashboards import auth, ids
from dashboards.pages import alerts, overview, topic
from dashboards.state import PICK_FROM, PICK_TO, query, range_problem, to_search

PAGES = {"/": overview, "/topic": topic, "/alerts": alerts}
CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#222}
.top{display:flex;gap:1.5em;align-items:center;background:#2c3e50;color:#fff;padding:.6em 1.2em}
.top a{color:#fff;text-decoration:none} .top .grow{flex:1}
.controls{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#fff;border-bottom:1px solid #ddd}
.controls label{margin-right:.6em} main{padding:1em 1.2em}
table.headlines{border-collapse:collapse;width:100%;background:#fff}
table.headlines td,table.headlines th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;font-size:14px}
.s-negative{color:#c0392b}.s-positive{color:#27ae60}
.alert-card{background:#fff;border-left:5px solid #c0392b;margin:.6em 0;padding:.6em 1em}
.alert-card.alert-resolved{border-left-color:#95a5a6} .status-firing{color:#c0392b;font-weight:bold}
.alert-card button{margin-left:.6em}
.top form{margin:0} .top button.link{background:none;border:0;color:#fff;cursor:pointer;font:inherit;padding:0}
.range-error:not(:empty){color:#b00020;padding:.3em 1.2em;background:#fff}
.overview-note:not(:empty){background:#fff;padding:.8em 1em;margin:.6em 0;color:#555}
.banner{background:#fff8e1;color:#5d4200;border-bottom:1px solid #e0c36b;padding:.4em 1.2em}
.store-note:not(:empty){background:#fdecea;color:#922;border-left:5px solid #c0392b;padding:.6em 1.2em;margin:.6em 1.2em}
"""


def shell(refresh_s: int, banner: str | None = None) -> html.Div:
    """The page frame; built for each page load, as it carries the browser's sign-out token.
    ``banner``: a line above every page (``MOODWIRE_DASHBOARD_BANNER``)."""
    return html.Div([
        dcc.Location(id=ids.URL, refresh="callback-nav"),
        *([html.Div(banner, id="banner", className="banner")] if banner else []),
        html.Div([html.Strong("Moodwire"), dcc.Link("Overview", href="/", id="nav-overview"),
                  dcc.Link("Alerts", href="/alerts", id="nav-alerts"), html.Span(className="grow"),
                  html.Span(id=ids.USER),
                  html.Form([dcc.Input(type="hidden", name="csrf", value=auth.csrf_token()),
                             html.Button("Log out", id="logout", type="submit", className="link")],
                            method="POST", action="/logout")], className="top"),
        html.Div([
            dcc.RadioItems(id=ids.RANGE, options=[{"label": f"last {r}", "value": r} for r in ("1h", "24h", "7d")]
                           + [{"label": "custom", "value": "custom"}], value="24h", inline=True),
            dcc.Input(id=ids.START, placeholder="start (ISO, UTC)", debounce=True, size="22"),
            dcc.Input(id=ids.END, placeholder="end (ISO, UTC)", debounce=True, size="22"),
            dcc.Checklist(id=ids.LIVE, options=[{"label": f"live (every {refresh_s} s)", "value": "live"}],
                          value=["live"], inline=True),
        ], className="controls"),
        html.Div(id=ids.RANGE_ERROR, className="range-error"),
        dcc.Interval(id=ids.TICK, interval=refresh_s * 1000),
        html.Div(id=ids.RETENTION_NOTE, className="note"),
        html.Div(id=ids.STORE_NOTE, className="store-note"),
        html.Main(id=ids.PAGE),
    ])


def _serve_metrics(server, registry) -> None:
    """/metrics (Prometheus text): requests and their latency by kind (page, callback, other),
    and what else registers on ``registry`` (refused sign-ins)."""
    import time as _time

    from flask import Response, g, request
    from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

    requests_total = Counter("moodwire_dashboard_requests", "HTTP requests", ["kind", "status"], registry=registry)
    latency = Histogram("moodwire_dashboard_request_seconds", "time to answer", ["kind"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def kind() -> str:
        if request.path.startswith("/_dash-update-component"):
            return "callback"
        return "page" if request.path in PAGES else "other"

    @server.before_request
    def _start():
        g.started = _time.perf_counter()

    @server.after_request
    def _count(response):
        k = kind()
        requests_total.labels(k, str(response.status_code)).inc()
        if hasattr(g, "started"):
            latency.labels(k).observe(_time.perf_counter() - g.started)
        return response

    @server.route("/metrics")
    def metrics():
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def url_state(trigger, search, rng, start, end):
    """The URL is the page state: on load (or a link) it sets the controls; a control change
    updates the URL. Returns (search, range, start, end), ``no_update`` where nothing changes."""
    q = query(search)
    if trigger in (None, ids.URL):
        return no_update, q.get("range", "24h"), q.get("start", ""), q.get("end", "")
    # A new range drops the interval picked on the chart (it may lie outside the new range).
    q.update(range=rng, start=start if rng == "custom" else None, end=end if rng == "custom" else None,
             **{PICK_FROM: None, PICK_TO: None})
    new = to_search(q)
    return (new if new != (search or "") else no_update), no_update, no_update, no_update


def retention_note(search: str | None, settings) -> str:
    """What the store no longer holds for the URL's range (MOODWIRE_STORE_KEEP_*), or ""."""
    from datetime import datetime, timezone

    from dashboards.data import resolution
    from dashboards.state import time_range
    from moodwire.spans import format_span

    rng = time_range(search)
    now = datetime.now(timezone.utc)
    policy, gone = settings.retention, []
    drawn = resolution(rng, settings.windows).window
    keep = policy.window(drawn)
    if keep is not None and rng.start < now - keep:
        gone.append(f"{drawn} windows are kept {format_span(keep)}")
    if policy.items is not None and rng.start < now - policy.items:
        gone.append(f"headlines are kept {format_span(policy.items)}")
    if not gone:
        return ""
    return "This range starts before what the store keeps: " + "; ".join(gone) + " (MOODWIRE_STORE_KEEP_*)."


def store_trouble(engine):
    """The callbacks' error handler: a store that cannot be read (damaged while the dashboard
    runs, or away) is said on the page, in place of an HTTP 500 and an empty page; any other
    error is raised as before."""
    from dash import set_props
    from sqlalchemy.exc import DatabaseError

    from moodwire.store import unreadable

    def handle(exc: Exception):
        if not isinstance(exc, DatabaseError):
            raise exc
        line = unreadable(engine, exc)
        set_props(ids.STORE_NOTE, {"children": f"{line[0].upper()}{line[1:]}. Reload the page once it is fixed."})
        return None  # every output of the failed callback left as it was
    return handle


def create_app(settings, engine, users, rules=()) -> Dash:
    """``users``: a ``dashboards.passwords.UsersFile``, or a fixed mapping of names to hashes.
    ``rules``: the alert rules (``alerts.rules.Rule``, read by attribute: name, window, when.kind,
    threshold, recover, min_count, selects(key)), drawn on the charts of the keys they judge."""
    from dashboards.passwords import UsersFile
    from dashboards.sessions import Sessions

    if not isinstance(users, UsersFile):
        users = UsersFile(None, users)
    app = Dash(__name__, title="Moodwire", suppress_callback_exceptions=True, update_title=None,
               on_error=store_trouble(engine))
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + CSS + "</style>")
    registry = CollectorRegistry()
    auth.install(app.server, users, settings.dashboard_auth_header, auth.secret_key(settings.home),
                 Sessions(engine, *settings.session_spans), address_limit=settings.dashboard_signin_limit,
                 user_limit=settings.dashboard_signin_user_limit, account_limit=settings.dashboard_signin_account_limit,
                 secure_cookie=settings.dashboard_cookie_secure,
                 origin=settings.dashboard_origin, registry=registry)
    _serve_metrics(app.server, registry)
    app.layout = lambda: shell(settings.dashboard_refresh_s, settings.dashboard_banner)

    @app.callback(Output(ids.PAGE, "children"), Output(ids.USER, "children"), Input(ids.URL, "pathname"),
                  State(ids.URL, "search"))
    def render(pathname, search):
        page = PAGES.get(pathname or "/")
        user = f"signed in as {auth.current_user()}"
        if page is None:
            return html.Div([html.H2("Not found"), dcc.Link("Back to the overview", href="/")]), user
        return page.layout(query(search)), user

    @app.callback(Output(ids.URL, "search"), Output(ids.RANGE, "value"), Output(ids.START, "value"),
                  Output(ids.END, "value"), Input(ids.URL, "search"), Input(ids.RANGE, "value"),
                  Input(ids.START, "value"), Input(ids.END, "value"))
    def sync(search, rng, start, end):
        return url_state(callback_context.triggered_id, search, rng, start, end)

    @app.callback(Output(ids.RETENTION_NOTE, "children"), Output(ids.RANGE_ERROR, "children"),
                  Input(ids.URL, "search"))
    def kept(search):
        return retention_note(search, settings), range_problem(search)

    @app.callback(Output(ids.TICK, "disabled"), Input(ids.LIVE, "value"))
    def live(value):
        return "live" not in (value or [])

    for page in PAGES.values():
        page.register(app, engine, settings, rules)
    app.server.config["MOODWIRE_HEADERS"] = auth.security_headers(list(app.csp_hashes()))
    return app


__all__ = ["create_app", "PAGES"]
