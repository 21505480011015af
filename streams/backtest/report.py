"""The back-test report: one HTML page a risk officer reads in two minutes.

At the top: the expectations' verdicts (rule, key, interval, passed / FAILED, the alerts found),
what was run, and per rule the alerts fired, the time spent firing, the first firing and the
median firing length. Then each key (topic or watchlist) an alert fired on, the keys with the
earliest alert first: the mean sentiment of the charted window with its 95 % band (broken where
no window holds news, never drawn across), the volume, the rules' thresholds as lines and the
periods the rules fired shaded; below it each alert with the headlines that fired it. The quiet
keys follow in one table (charted too with ``chart_all``). Plotly's script is a file beside the
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

from alerts.rules import Rule
from moodwire.charts import band_polygons, gaps
from moodwire.records import AlertEvent, TopicWindow, watchlist_name


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


def label(key: str) -> str:
    """A key as people read it: "Watchlist: NAME" or "Topic: NAME"."""
    name = watchlist_name(key)
    return f"Watchlist: {name}" if name is not None else f"Topic: {key}"


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
                     "first": mine[0].starts_at.strftime("%Y-%m-%d %H:%M UTC") if mine else "–",
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
                      legend={"orientation": "h", "y": 1.08}, title={"text": html.escape(label(key)), "font": {"size": 14}})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def write_plotly(folder) -> None:
    """Plotly's script beside the report (3.6 MB, once per folder; reports in one folder share it)."""
    from pathlib import Path

    from plotly.offline import get_plotlyjs

    path = Path(folder) / PLOTLY_JS
    if not path.exists():
        path.write_text(get_plotlyjs(), encoding="utf-8")


def _alert_list(eps: Sequence[Episode], end_of_news: datetime, lead_of: dict | None = None) -> str:
    if not eps:
        return "<p class='quiet'>No alert fired on this key.</p>"
    parts = []
    for e in eps:
        until = e.ends_at.strftime("%Y-%m-%d %H:%M") if e.ends_at else "still firing at the end of the news"
        reason = f" — {html.escape(e.last.reason)}" if e.last.status == "resolved" and e.last.reason else ""
        items = "".join(
            f"<li>{ev.score:+.2f} · {ev.published_at.strftime('%Y-%m-%d %H:%M')} · "
            + (f"<a href='{html.escape(ev.url)}'>{html.escape(ev.title)}</a>" if ev.url else html.escape(ev.title))
            + "</li>" for ev in e.first.evidence)
        lead = (lead_of or {}).get((e.rule, e.key, e.starts_at))
        early = (f" — <b>lead {_duration(lead.lead)}</b> after the first headline in its window "
                 f"({lead.first_at:%Y-%m-%d %H:%M})" if lead is not None and lead.lead is not None else "")
        parts.append(f"<div class='alert'><b>{html.escape(e.rule)}</b> fired "
                     f"{e.starts_at.strftime('%Y-%m-%d %H:%M')}{early} → {until} ({_duration(e.length(end_of_news))}), "
                     f"value {e.first.value:+.3f} vs {e.first.threshold:+g}{reason}<ul>{items}</ul></div>")
    return "".join(parts)


def _verdicts(outcomes: Sequence) -> str:
    """The expectations' results: the first thing a risk officer reads."""
    if not outcomes:
        return ""
    rows = []
    for o in outcomes:
        e = o.expectation
        found = o.why or (f"{o.found}: " + ", ".join(o.starts[:5]) if o.starts else "none")
        verdict = "passed" if o.passed else "FAILED"
        rows.append(f"<tr class='{verdict.lower()}'><td><b>{verdict}</b></td><td>{html.escape(e.name)}</td>"
                    f"<td>{html.escape('any rule' if e.rule == 'any' else e.rule)}</td><td>{html.escape(label(e.key) if e.key else 'any key')}</td>"
                    f"<td>{e.between[0]:%Y-%m-%d %H:%M} – {e.between[1]:%Y-%m-%d %H:%M}</td>"
                    f"<td>{html.escape(e.wanted())}</td>"
                    f"<td>{html.escape(found)}</td></tr>")
    passed = sum(o.passed for o in outcomes)
    return (f"<h2>Expectations: {passed} of {len(outcomes)} passed</h2><table class='verdicts'><tr><th>verdict</th>"
            "<th>expectation</th><th>rule</th><th>key</th><th>interval (UTC)</th><th>wanted</th>"
            f"<th>alerts found</th></tr>{''.join(rows)}</table>")


def _quiet(keys: Sequence[str], by_key: dict[str, list[TopicWindow]]) -> str:
    if not keys:
        return ""
    rows = "".join(f"<tr><td>{html.escape(label(k))}</td><td>{max(w.count for w in by_key[k])}</td>"
                   f"<td>{min(w.mean_score for w in by_key[k]):+.2f}</td></tr>" for k in keys)
    return ("<h2>Quiet keys</h2><p class='quiet'>No alert fired on these keys (not charted; "
            "<code>--chart-all</code> draws them).</p><table><tr><th>key</th><th>most headlines in a window</th>"
            f"<th>lowest window mean</th></tr>{rows}</table>")


def render(title: str, facts: Sequence[tuple[str, str]], rules: Sequence[Rule], chart_window: str,
           windows: Sequence[TopicWindow], alerts: Sequence[AlertEvent], end_of_news: datetime,
           outcomes: Sequence = (), chart_all: bool = False, leads: Sequence = ()) -> str:
    eps = episodes(alerts)
    lead_of = {(x.rule, x.key, x.fired_at): x for x in leads}
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
        sections.append(f"<section><h2>{html.escape(label(key))}</h2>"
                        f"{_chart(key, series, key_rules, mine, end_of_news, f'chart-{i}')}"
                        f"{_alert_list(mine, end_of_news, lead_of)}</section>")
    if not chart_all:
        sections.append(_quiet(quiet, by_key))
    summary = "".join(f"<tr><td>{html.escape(r['rule'])}</td><td>{r['alerts']}</td><td>{r['time_firing']}</td>"
                      f"<td>{r['first']}</td><td>{r['median_length']}</td></tr>"
                      for r in rule_summary(rules, eps, end_of_news))
    rule_lines = "".join(f"<li><b>{html.escape(r.name)}</b>: {html.escape(_threshold_text(r))}"
                         + (f" — {html.escape(r.description)}" if r.description else "") + "</li>" for r in rules)
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ border: 1px solid #bbb; padding: 4px 8px; text-align: left; font-size: 13px; }}
section {{ page-break-inside: avoid; border-top: 1px solid #ddd; margin-top: 18px; }}
tr.failed td {{ background: #fdecea; }} tr.passed td:first-child {{ color: #2e7d32; }}
.alert {{ font-size: 13px; margin: 6px 0; }} .alert ul {{ margin: 2px 0 8px; }} .quiet {{ color: #777; font-size: 13px; }}
@media print {{ body {{ margin: 0; }} a {{ color: #000; }} }}
</style>
<script src="{PLOTLY_JS}"></script></head><body>
<h1>{html.escape(title)}</h1>
{_verdicts(outcomes)}
<table>{fact_rows}</table>
<h2>Rules</h2><ul>{rule_lines}</ul>
<table><tr><th>rule</th><th>alerts fired</th><th>time firing</th><th>first firing</th><th>median firing length</th></tr>
{summary}</table>
<p>Charts: the <b>{html.escape(chart_window)}</b> window by its end time; the band is the 95 % interval of the mean;
red shading marks when an alert was firing; dashed lines are the rules' fixed thresholds; a line breaks where no
window holds news.</p>
{''.join(sections)}
</body></html>
"""
