"""The back-test report: one HTML page a risk officer reads in two minutes.

At the top: the expectations' verdicts (rule, key, interval, passed / FAILED, the alerts found),
what was run, and per rule the alerts fired, the time spent firing, the first firing and the
median firing length. Then each key (topic or watchlist) an alert fired on, the keys with the
earliest alert first: the mean sentiment of the charted window with its 95 % band (broken where
no window holds news, never drawn across), the volume, the rules' thresholds as lines and the
periods the rules fired shaded; below it each alert with the headlines that fired it. The quiet
keys follow in one table (charted too with ``chart_all``). The page is the Jinja2 template
``templates/report.html.j2`` (every value escaped; the charts are Plotly's own HTML). Plotly's script is a file beside the
page (``PLOTLY_JS``, written once per folder): the page needs no network and stays small.
"""

from __future__ import annotations

import html
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from alerts.rules import Rule
from moodwire.charts import band_polygons, gaps
from moodwire.records import AlertEvent, TopicWindow, key_label, watchlist_name
from moodwire.spans import format_time


@dataclass(frozen=True)
class Episode:
    rule: str
    key: str
    starts_at: datetime
    ends_at: datetime | None  # None: still firing at the end of the news
    first: AlertEvent
    last: AlertEvent

    def length(self, end_of_news: datetime) -> timedelta:
        return (self.ends_at or end_of_news) - self.starts_at


def episodes(alerts: Sequence[AlertEvent]) -> list[Episode]:
    grouped: dict[tuple, list[AlertEvent]] = defaultdict(list)
    for a in alerts:
        grouped[(a.fingerprint, a.starts_at)].append(a)
    out = []
    for events in grouped.values():
        events = sorted(events, key=lambda a: a.seq)
        resolved = next((a for a in events if a.status == "resolved"), None)
        out.append(Episode(events[0].rule, events[0].topic, events[0].starts_at,
                           resolved.ends_at if resolved else None, events[0], events[-1]))
    return sorted(out, key=lambda e: (e.starts_at, e.rule, e.key))


def _duration(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h"


def rule_summary(rules: Sequence[Rule], eps: Sequence[Episode], end_of_news: datetime) -> list[dict]:
    rows = []
    for rule in rules:
        mine = [e for e in eps if e.rule == rule.name]
        lengths = [e.length(end_of_news) for e in mine]
        rows.append({"rule": rule.name, "alerts": len(mine),
                     "time_firing": _duration(sum(lengths, timedelta())) if mine else "–",
                     "first": format_time(mine[0].starts_at) if mine else "–",
                     "median_length": _duration(statistics.median(lengths)) if mine else "–"})
    return rows


def _threshold_text(rule: Rule) -> str:
    kind = rule.when.kind
    if kind == "negative_count":
        n = rule.when.negative_count
        when = ("fires as the headline that makes the count arrives" if rule.judged_early
                else f"min_count {rule.min_count}, for {rule.for_}")
        return f"at least {n.at_least} headlines scored below {n.score_below:+g}, window {rule.window}, {when}"
    words = {"mean_below": "mean <", "mean_above": "mean >", "negative_share_above": "negative share >",
             "volume_spike": "volume spike >", "shift": "change vs baseline"}[kind]
    extra = f" ({'z' if rule.when.volume_spike and rule.when.volume_spike.z else '×'})" if kind == "volume_spike" else ""
    return f"{words} {rule.threshold:+g}{extra}, window {rule.window}, min_count {rule.min_count}, for {rule.for_}"


PLOTLY_JS = "plotly.min.js"


def _with_gaps(windows: Sequence[TopicWindow]) -> list[TopicWindow | None]:
    """The windows with a None wherever one is missing (no news): lines break there."""
    out: list[TopicWindow | None] = []
    for w, gap in zip(windows, gaps([w.start for w in windows])[1]):
        if gap:
            out.append(None)
        out.append(w)
    return out


def _chart(key: str, windows: Sequence[TopicWindow], rules: Sequence[Rule], eps: Sequence[Episode],
           end_of_news: datetime, div_id: str) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    gapped = _with_gaps(windows)
    xs = [w.end if w else prev.end + (prev.end - prev.start) / 2 for prev, w in zip([None, *gapped], gapped)]
    means = [round(w.mean_score, 3) if w else None for w in gapped]
    half = [1.96 * math.sqrt(max(0.0, (w.sum_sq - w.count * w.mean_score ** 2) / (w.count - 1)) / w.count)
            if w and w.count > 1 else 0.0 for w in gapped]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    upper = [None if m is None else round(min(1, m + h), 3) for m, h in zip(means, half)]
    lower = [None if m is None else round(max(-1, m - h), 3) for m, h in zip(means, half)]
    band_x, band_y = band_polygons(xs, upper, lower)
    fig.add_trace(go.Scatter(x=band_x, y=band_y, mode="lines", line={"width": 0}, fill="toself",
                             fillcolor="rgba(52,101,164,0.18)", name="95 % band", hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=xs, y=means, mode="lines", line={"color": "#204a87", "width": 1.6},
                             name="mean sentiment", customdata=[w.count if w else 0 for w in gapped],
                             hovertemplate="%{x}<br>mean %{y:+.2f}<br>%{customdata} items<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=xs, y=[w.count if w else None for w in gapped], marker_color="#888a85",
                         name="items in window"),
                  row=2, col=1)
    shade_x, shade_y = [], []
    for e in eps:
        shade_x += [e.starts_at, e.starts_at, e.ends_at or end_of_news, e.ends_at or end_of_news, None]
        shade_y += [-1, 1, 1, -1, None]
    if shade_x:
        fig.add_trace(go.Scatter(x=shade_x, y=shade_y, fill="toself", fillcolor="rgba(204,0,0,0.15)",
                                 line={"width": 0}, mode="lines", name="alert firing", hoverinfo="skip"),
                      row=1, col=1)
    for rule in rules:
        if rule.when.kind in ("mean_below", "mean_above"):
            fig.add_hline(y=rule.threshold, line={"dash": "dash", "color": "#a40000", "width": 1},
                          annotation_text=f"{rule.name}: {_threshold_text(rule)}", annotation_font_size=10,
                          annotation_position="bottom left", annotation_bgcolor="rgba(255,255,255,0.8)",
                          row=1, col=1)
    fig.update_yaxes(title_text="mean sentiment (p₊ − p₋)", range=[-1, 1], row=1, col=1)
    fig.update_yaxes(title_text="items", row=2, col=1)
    fig.update_xaxes(title_text="window end (UTC)", row=2, col=1)
    fig.update_layout(template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 30, "b": 40},
                      legend={"orientation": "h", "y": 1.08}, title={"text": html.escape(key_label(key)), "font": {"size": 14}})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def write_plotly(folder) -> None:
    """Plotly's script beside the report (3.6 MB, once per folder; reports in one folder share it)."""
    from pathlib import Path

    from plotly.offline import get_plotlyjs

    path = Path(folder) / PLOTLY_JS
    if not path.exists():
        path.write_text(get_plotlyjs(), encoding="utf-8")


def _alerts(eps: Sequence[Episode], end_of_news: datetime, lead_of: dict, counts: frozenset = frozenset()) -> list[dict]:
    """Each episode as the report lists it; ``counts``: the rules whose value is a number of
    headlines (``negative_count``), written as whole numbers."""
    out = []
    for e in eps:
        lead = lead_of.get((e.rule, e.key, e.starts_at))
        has_lead = lead is not None and lead.lead is not None
        count = e.rule in counts
        out.append({"rule": e.rule, "starts": format_time(e.starts_at),
                    "delay": _duration(lead.lead) if has_lead else None,
                    "first_at": format_time(lead.first_at) if has_lead else None,
                    "until": format_time(e.ends_at) if e.ends_at else "still firing at the end of the news",
                    "length": _duration(e.length(end_of_news)),
                    "value": f"{e.first.value:.0f} headlines" if count else f"{e.first.value:+.3f}",
                    "threshold": f"{e.first.threshold:.0f}" if count else f"{e.first.threshold:+g}",
                    "reason": e.last.reason if e.last.status == "resolved" else None,
                    "evidence": [{"score": f"{ev.score:+.2f}", "published": format_time(ev.published_at),
                                  "url": ev.url, "title": ev.title} for ev in e.first.evidence]})
    return out


def _verdicts(outcomes: Sequence) -> list[dict]:
    """The expectations' results: the first thing a risk officer reads."""
    return [{"passed": o.passed, "name": o.expectation.name,
             "rule": "any rule" if o.expectation.rule == "any" else o.expectation.rule,
             "key": key_label(o.expectation.key) if o.expectation.key else "any key",
             "interval": f"{o.expectation.between[0]:%Y-%m-%d %H:%M} – {o.expectation.between[1]:%Y-%m-%d %H:%M}",
             "wanted": o.expectation.wanted(),
             "found": o.why or (f"{o.found}: " + ", ".join(o.starts[:5]) if o.starts else "none")}
            for o in outcomes]


@lru_cache(maxsize=1)
def _template():
    """templates/report.html.j2, every value HTML-escaped unless marked safe (the charts)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("streams.backtest", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=False)
    return env.get_template("report.html.j2")


def render(title: str, facts: Sequence[tuple[str, str]], rules: Sequence[Rule], chart_window: str,
           windows: Sequence[TopicWindow], alerts: Sequence[AlertEvent], end_of_news: datetime,
           outcomes: Sequence = (), chart_all: bool = False, leads: Sequence = ()) -> str:
    from markupsafe import Markup

    eps = episodes(alerts)
    lead_of = {(x.rule, x.key, x.fired_at): x for x in leads}
    counts = frozenset(r.name for r in rules if r.counts_headlines)
    by_key: dict[str, list[TopicWindow]] = defaultdict(list)
    for w in windows:
        if w.window == chart_window:
            by_key[w.topic].append(w)
    first_alert = {}
    for e in eps:
        first_alert.setdefault(e.key, e.starts_at)
    alerted = sorted((k for k in by_key if k in first_alert), key=lambda k: (first_alert[k], k))
    quiet = sorted((k for k in by_key if k not in first_alert), key=lambda k: (watchlist_name(k) is None, k))
    sections = []
    for i, key in enumerate(alerted + (quiet if chart_all else [])):
        series = sorted(by_key[key], key=lambda w: w.start)
        mine = [e for e in eps if e.key == key]
        key_rules = [r for r in rules if r.window == chart_window and r.selects(key)]
        sections.append({"label": key_label(key), "alerts": _alerts(mine, end_of_news, lead_of, counts),
                         "chart": Markup(_chart(key, series, key_rules, mine, end_of_news, f"chart-{i}"))})
    return _template().render(
        title=title, plotly_js=PLOTLY_JS, verdicts=_verdicts(outcomes), facts=facts, chart_window=chart_window,
        rules=[{"name": r.name, "threshold": _threshold_text(r), "description": r.description} for r in rules],
        summary=rule_summary(rules, eps, end_of_news), sections=sections,
        quiet=[] if chart_all else [{"label": key_label(k), "most": max(w.count for w in by_key[k]),
                                     "lowest": f"{min(w.mean_score for w in by_key[k]):+.2f}"} for k in quiet])
