"""Figures and tables as pure functions of data frames (no store, no Dash callbacks)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from moodwire.charts import band_polygons, gaps
from moodwire.records import key_label, watchlist_name
from moodwire.spans import format_time as when  # every page writes a time this one way

NEGATIVE, NEUTRAL, POSITIVE = "#c0392b", "#95a5a6", "#27ae60"
PICKED = "#2980b9"


def label(key: str) -> str:
    """A key as people read it, the same on every page: a topic's name, or "watchlist: NAME"."""
    return key_label(key)


def with_interval(frame: pd.DataFrame, z: float = 1.96) -> pd.DataFrame:
    """Adds ``low`` / ``high``: the mean's confidence interval from count and sum of squares."""
    out = frame.copy()
    n = out["count"].astype(float)
    mean = out["mean_score"].astype(float)
    var = ((out["sum_sq"].astype(float) - n * mean ** 2) / (n - 1).where(n > 1)).clip(lower=0)
    se = np.sqrt(var / n).fillna(0.0)
    out["low"], out["high"] = (mean - z * se).clip(-1, 1), (mean + z * se).clip(-1, 1)
    return out


EVIDENCE_MIN = 5  # headlines a range needs before its mean is ranked (the shipped watchlist rules' min_count)


def overview_table(windows: pd.DataFrame, alerts: pd.DataFrame, totals: pd.DataFrame | None = None,
                   now: datetime | None = None, minimum: int = EVIDENCE_MIN) -> pd.DataFrame:
    """Per key (topic or watchlist) over the range: the mean of every headline in it and their
    negative share (``totals``: from non-overlapping windows, ``data.totals``), their count; the
    latest complete window's mean and headline count (a window not final yet, or ending after
    ``now``, is still filling: shown apart, as ``filling``), the change of the window mean from the first window to
    the latest complete one; firing alerts. ``windows``: one window size; ``alerts``: alert
    episodes, or firing counts per key (``data.firing``). A key with an alert firing is listed
    whatever the range holds.

    Sorted as a risk officer asks: firing first, then keys with at least ``minimum`` headlines
    before those with fewer, then by ``weighted``: the mean shrunk toward 0 by its count,
    mean × n / (n + minimum), so one headline at −0.99 (−0.17) never outranks twenty at −0.5
    (−0.4)."""
    cols = ["topic", "kind", "mean", "weighted", "latest", "latest_items", "filling", "change", "volume",
            "negative_share", "firing"]
    if alerts.empty:
        firing = pd.Series(dtype=int)
    elif "status" in alerts:  # alert episodes
        firing = alerts[alerts["status"] == "firing"].groupby("topic").size()
    else:  # firing counts per key (``data.firing``)
        firing = alerts.set_index("topic")["firing"]
    live = windows[windows["count"] > 0]
    if live.empty and firing.empty:
        return pd.DataFrame(columns=cols)
    now = now or datetime.now(timezone.utc)
    # still filling: not final yet (the stream's newest headlines have not passed its end by the
    # allowed lateness; a replay's windows fill long after their wall-clock end), or ending after now
    filling = live["end"] > now if "end" in live else pd.Series(False, index=live.index)
    if "final" in live:
        filling = filling | ~live["final"].astype(bool)
    done = live[~filling]
    ends = done.sort_values("start").groupby("topic").agg(
        first=("mean_score", "first"), last=("mean_score", "last"), last_count=("count", "last"))
    open_ = live[filling].sort_values("start").groupby("topic").last()
    keys = ends.index.union(live["topic"].unique()).union(firing.index[firing > 0])
    ends = ends.reindex(keys)
    all_windows = live.sort_values("start").groupby("topic").agg(share=("negative_share", "mean"),
                                                                 mean=("mean_score", "mean")).reindex(keys)
    counted = totals.set_index("topic") if totals is not None and not totals.empty else None
    table = pd.DataFrame({"topic": keys})
    table["kind"] = ["topic" if watchlist_name(t) is None else "watchlist" for t in keys]
    table["latest"] = ends["last"].astype(float).round(3).to_numpy()
    table["latest_items"] = ends["last_count"].fillna(0).astype(int).to_numpy()
    table["filling"] = ["" if t not in open_.index else
                        f"{open_.loc[t, 'mean_score']:+.3f} from {int(open_.loc[t, 'count'])} so far" for t in keys]
    table["change"] = (ends["last"] - ends["first"]).astype(float).round(3).to_numpy()
    if counted is not None:  # distinct items from non-overlapping windows (``data.totals``)
        volume = counted["items"].reindex(keys)
        table["volume"] = volume.fillna(0).astype(int).to_numpy()
        share = counted["negative_share"].reindex(keys)
        table["negative_share"] = share.where(volume.notna(), all_windows["share"]).astype(float).round(3).to_numpy()
        mean = counted["mean"].reindex(keys).where(volume.notna(), all_windows["mean"])
        table["mean"] = mean.astype(float).round(3).to_numpy()
        n = volume.fillna(0).to_numpy()
    else:  # no counting windows stored: the windows' means and shares, not per headline
        table["volume"] = 0
        table["negative_share"] = all_windows["share"].astype(float).round(3).to_numpy()
        table["mean"] = all_windows["mean"].astype(float).round(3).to_numpy()
        n = live.groupby("topic")["count"].sum().reindex(keys).fillna(0).to_numpy()
    table["weighted"] = (table["mean"] * n / (n + minimum)).astype(float).round(3)
    table["firing"] = firing.reindex(keys).fillna(0).astype(int).to_numpy()
    table["_thin"] = n < minimum
    table = table.sort_values(["firing", "_thin", "weighted"], ascending=[False, True, True], na_position="last")
    return table[cols].reset_index(drop=True)


def no_data(fig: go.Figure, text: str) -> go.Figure:
    """An empty chart that says why (Grafana's "No data"), in place of bare axes."""
    fig.update_layout(annotations=[{"text": text, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
                                    "showarrow": False, "font": {"size": 16, "color": "#555"}}],
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def with_gaps(w: pd.DataFrame) -> pd.DataFrame:
    """``w`` (sorted by start) with an empty row wherever windows are missing (hours or days
    without a headline): lines and the band break there instead of joining across the gap."""
    step, flags = gaps(list(w["start"]))
    breaks = w["start"][flags]
    if breaks.empty:
        return w
    holes = pd.DataFrame({"start": breaks - step / 2, "end": breaks - step / 2})
    return pd.concat([w, holes], ignore_index=True).sort_values("start", kind="stable").reset_index(drop=True)


def heatmap(windows: pd.DataFrame) -> go.Figure:
    """Topic × time of mean sentiment (red negative, green positive), each cell with its
    headline count (written in the cell where the columns are few, always on hover); a window
    without headlines is grey, not the white of a neutral mean."""
    fig = go.Figure()
    if not windows.empty:
        cells = windows.drop_duplicates(["topic", "start"], keep="last")
        grid = cells.pivot(index="topic", columns="start", values="mean_score")
        counts = cells.pivot(index="topic", columns="start", values="count").reindex_like(grid).fillna(0)
        grid = grid.where(counts > 0)  # an empty window has no mean: grey, not neutral
        text = counts.astype(int).astype(str).where(counts > 0, "")
        fig.add_trace(go.Heatmap(z=grid.values, x=list(grid.columns), y=[label(t) for t in grid.index], zmin=-1, zmax=1,
                                 colorscale=[[0, NEGATIVE], [0.5, "#f7f7f7"], [1, POSITIVE]], text=text.values,
                                 texttemplate="%{text}" if len(grid.columns) <= 48 else None, xgap=1, ygap=1,
                                 colorbar={"title": "mean"},
                                 hovertemplate="%{y}<br>%{x}<br>mean %{z:.2f} of %{text} headlines<extra></extra>"))
    fig.update_layout(margin={"l": 160, "r": 10, "t": 30, "b": 40}, height=max(300, 26 * windows["topic"].nunique() + 80)
                      if not windows.empty else 300, plot_bgcolor="#c8c8c8",
                      title="Mean sentiment by topic and time (number: headlines; grey: none)")
    return no_data(fig, "No news in this range") if windows.empty else fig


def trend(windows: pd.DataFrame, alerts: pd.DataFrame, title: str = "", revision: str = "",
          picked: tuple | None = None, empty: str = "No news in this range", rules=()) -> go.Figure:
    """Mean sentiment with its confidence band over volume bars, on one time axis; alert
    periods shaded, their starts marked; the ``picked`` interval outlined. Drag on the chart
    to select a time range."""
    # Two rows on one time axis, laid out directly (make_subplots builds and validates far more).
    traces = []
    if not windows.empty:
        w = with_gaps(with_interval(windows.sort_values("start")))
        mid = w["start"] + (w["end"] - w["start"]) / 2
        band = band_polygons(list(mid), [None if pd.isna(v) else v for v in w["high"]],
                             [None if pd.isna(v) else v for v in w["low"]])
        traces += [
            go.Scatter(x=band[0], y=band[1], mode="lines", line={"width": 0}, fill="toself",
                       fillcolor="rgba(52,152,219,0.2)", name="95% interval", hoverinfo="skip"),
            go.Scatter(x=mid, y=w["mean_score"], mode="lines+markers", name="mean sentiment", line={"color": "#2c3e50"},
                       customdata=np.stack([w["start"].astype(str), w["end"].astype(str), w["count"].fillna(0)],
                                           axis=-1),
                       hovertemplate="%{customdata[0]} – %{customdata[1]}<br>mean %{y:.3f}, "
                                     "%{customdata[2]} items<extra></extra>"),
            go.Bar(x=mid, y=w["count"], name="items", marker_color="#7f8c8d", yaxis="y2",
                   width=(w["end"] - w["start"]).dt.total_seconds().fillna(0).to_numpy() * 1000 * 0.9)]
        floor = max((r.min_count for r in rules), default=1)
        thin = w[w["count"] < floor]
        if not thin.empty:  # too few headlines for the rules to judge: not the same evidence
            traces.append(go.Scatter(x=thin["start"] + (thin["end"] - thin["start"]) / 2, y=thin["mean_score"],
                                     mode="markers", name=f"under min_count {floor}: not judged",
                                     marker={"symbol": "circle-open", "size": 11, "color": "#e67e22",
                                             "line": {"width": 2}}, hoverinfo="skip"))
    if not alerts.empty:
        periods = alert_periods(alerts, windows["end"].max() if not windows.empty else None)
        if periods is not None:  # every period in one trace: one layer, however many episodes
            traces.append(periods)
        traces.append(go.Scatter(x=alerts["starts_at"], y=[1.0] * len(alerts), mode="markers+text", name="alerts",
                                 marker={"symbol": "triangle-down", "size": 14, "color": NEGATIVE},
                                 text=alerts["rule"], textposition="top center",
                                 hovertemplate="%{text}<br>from %{x}<extra></extra>"))
    shapes = rule_lines(rules)
    if picked:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": picked[0], "x1": picked[1], "y0": 0,
                       "y1": 1, "fillcolor": PICKED, "opacity": 0.10, "line": {"color": PICKED, "width": 1},
                       "name": "picked"})
    # uirevision: a live refresh keeps the analyst's zoom and selection
    fig = go.Figure(data=traces, layout={
        "title": {"text": title}, "dragmode": "select", "selectdirection": "h", "height": 520,
        "uirevision": revision or title, "margin": {"l": 60, "r": 10, "t": 40, "b": 30},
        "legend": {"orientation": "h", "y": -0.1}, "shapes": shapes,
        "xaxis": {"anchor": "y2"},
        "yaxis": {"domain": [0.32, 1.0], "title": {"text": "mean"}, "range": [-1.05, 1.15]},
        "yaxis2": {"domain": [0.0, 0.28], "title": {"text": "items"}}})
    return no_data(fig, empty) if windows.empty and empty else fig


def rule_lines(rules) -> list[dict]:
    """Each rule's threshold (dashed) and recover level (dotted) on the mean axis, labelled,
    for rules on the mean (``when: mean_below / mean_above``)."""
    shapes = []
    for r in rules:
        if r.when.kind not in ("mean_below", "mean_above"):
            continue
        levels = [(r.threshold, "dash", f"{r.name}: fires {r.when.kind.replace('_', ' ')} {r.threshold:+.2f}")]
        if r.recover is not None:
            levels.append((r.recover, "dot", f"{r.name}: recovers past {r.recover:+.2f}"))
        for y, dash, text in levels:
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
                           "line": {"color": NEGATIVE, "width": 1.5, "dash": dash}, "name": "rule",
                           "label": {"text": text, "textposition": "end", "yanchor": "bottom",
                                     "font": {"size": 11, "color": NEGATIVE}}})
    return shapes


def alert_periods(alerts: pd.DataFrame, open_until) -> go.Scatter | None:
    """Alert periods as shaded rectangles of one filled trace (each closed, then a gap): drawing
    one layout shape per period made a chart with dozens of periods slow to build and render.
    A period still firing runs to ``open_until`` (the last window's end)."""
    xs: list = []
    for start, end in zip(alerts["starts_at"], alerts["ends_at"]):
        x1 = end if isinstance(end, pd.Timestamp) and not pd.isna(end) else open_until
        if x1 is None or pd.isna(x1):
            continue
        xs += [start, start, x1, x1, start, None]
    if not xs:
        return None
    ys = [-1.05, 1.15, 1.15, -1.05, -1.05, None] * (len(xs) // 6)
    return go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor="rgba(192,57,43,0.12)",
                      line={"width": 0}, hoverinfo="skip", name="alert periods")


def selected_interval(click: dict | None, selected: dict | None) -> tuple[str, str] | None:
    """The time interval an analyst picked: a dragged x range, or the clicked window."""
    if selected and selected.get("range") and selected["range"].get("x"):
        x0, x1 = selected["range"]["x"][:2]
        return str(x0), str(x1)
    if click and click.get("points"):
        data = click["points"][0].get("customdata")
        if data and len(data) >= 2:
            return str(data[0]), str(data[1])
    return None


def fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


__all__ = ["label", "overview_table", "heatmap", "trend", "no_data", "with_gaps", "rule_lines", "alert_periods", "with_interval", "selected_interval", "fmt", "when"]
