"""One back-test: news file → classified items → windows and alerts → files in the output folder.

Outputs (``alerts.jsonl`` and ``windows.jsonl`` are byte-identical for the same inputs):
``alerts.jsonl`` every alert event as ``moodwire aggregate`` would put it on ``alerts``;
``windows.jsonl`` the final windows, ordered by key, window and start; ``report.html``;
``scored.jsonl`` the classified items (the cache a second back-test reuses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from alerts.rules import load_rules
from moodwire.settings import Settings
from moodwire.spans import WindowSpec, format_span, parse_windows
from streams.backtest.expect import check, load_expectations
from streams.backtest.simulate import fold
from streams.backtest.news import classify_items, within
from streams.backtest.lead import leads
from streams.backtest.report import render, write_plotly
from streams.classify.worker import keyed_records
from moodwire.errors import BacktestError, ReplayError
from streams.ingest.replay import read_recorded


@dataclass(frozen=True)
class BacktestRun:
    news_file: str
    rules_file: str
    out: str
    start: datetime | None = None
    end: datetime | None = None
    windows: str | None = None  # span[/step],… ; default: the configured windows the rules use
    expect_file: str | None = None
    progress: bool = True
    watchlists_file: str | None = None
    chart_all: bool = False  # the report charts every key, not only those an alert fired on


def choose_windows(configured: list[WindowSpec], override: str | None, used: set[str]) -> list[WindowSpec]:
    """``override`` (``--windows``) when given; otherwise the configured windows the rules use
    (all when none is named: a back-test without matching rules still charts them)."""
    if override:
        try:
            return parse_windows(override)
        except ValueError as exc:
            raise BacktestError(f"--windows {override!r}: {exc}") from None
    specs = configured
    chosen = [s for s in specs if s.name in used]
    return chosen or specs


def backtest(settings: Settings, run: BacktestRun, engine_factory: Callable, say: Callable[[str], None]) -> int:
    """Run the back-test; returns the exit status (1 when an expectation failed)."""
    out = Path(run.out)
    if out.exists() and not out.is_dir():
        raise BacktestError(f"--out {out} is a file; give a folder (it is created when missing)")
    rules_any = load_rules(run.rules_file)
    windows = choose_windows(settings.windows, run.windows, {r.window for r in rules_any})
    rules = load_rules(run.rules_file, [w.name for w in windows])
    expectations = load_expectations(run.expect_file, [r.name for r in rules]) if run.expect_file else []
    listing = [r.name for r in rules if r.watchlists is not None]
    if listing and not run.watchlists_file:
        say(f"note: rules {', '.join(listing)} select watchlists, but no watchlist file is given (--watchlists or "
            "MOODWIRE_WATCHLISTS): they judge nothing in this back-test")
    try:
        plan = read_recorded(run.news_file)
    except ReplayError as exc:
        raise BacktestError(str(exc)) from None
    for line in plan.skipped:
        say(f"skipped {line}")
    items = within(plan.items, run.start, run.end)
    if not items:
        raise BacktestError(f"{run.news_file}: no news between {run.start or 'the start'} and {run.end or 'the end'}")
    say(f"{run.news_file}: {plan.rows} rows, {len(plan.items)} news items, {len(plan.skipped)} skipped, "
        f"{plan.date_only} with a date and no time of day (read as 12:00 UTC); {len(items)} in range "
        f"{items[0].published_at:%Y-%m-%d %H:%M} … {items[-1].published_at:%Y-%m-%d %H:%M} UTC")
    engine = engine_factory()
    matcher = None
    if run.watchlists_file:
        from moodwire.watchlists import Matcher, load_watchlists

        matcher = Matcher(load_watchlists(run.watchlists_file, tuple(engine.spec.topic_labels)))
    scored = classify_items(items, engine, out, say=say, progress=run.progress)
    if matcher is not None:  # matched on every run (cheap): a changed list needs no new classification
        from streams.classify.targets import read_targets

        targets = read_targets(engine, matcher, [s.title for s in scored], [s.topic for s in scored])
        scored = [s.model_copy(update={"watchlists": matcher.match(s.title, s.topic), "targets": t})
                  for s, t in zip(scored, targets)]
        say("watchlist matches: " + ", ".join(f"{w.name} {sum(w.name in s.watchlists for s in scored)}"
                                              for w in matcher.watchlists))
    lateness = settings.lateness
    records = [item for _, item in keyed_records(scored)]
    result = fold(records, rules, windows, lateness, settings.kafka_partitions, settings.aggregate_batch,
                  settings.future_tolerance)
    for reason in result.future:
        say(f"left out: {reason}")
    early = leads(result.alerts, records)
    out.mkdir(parents=True, exist_ok=True)
    _write_lines(out / "alerts.jsonl", [a.encode() for a in result.alerts])
    ordered = sorted(result.windows, key=lambda w: (w.topic, w.window, w.start))
    _write_lines(out / "windows.jsonl", [w.encode() for w in ordered])
    horizon = datetime.now(timezone.utc) + settings.future_tolerance
    end_of_news = max((i.published_at for i in items if i.published_at <= horizon), default=items[0].published_at)
    chart_window = rules[0].window if rules else windows[-1].name
    facts = [("news", f"{run.news_file} — {len(items)} headlines, {items[0].published_at:%Y-%m-%d %H:%M} to "
                      f"{end_of_news:%Y-%m-%d %H:%M} UTC"),
             ("rows skipped", f"{len(plan.skipped)} (bad rows, each listed on the terminal)"),
             ("dates without a time", f"{plan.date_only} rows, read as 12:00 UTC"),
             ("model", engine.label), ("rules", run.rules_file),
             ("watchlists", run.watchlists_file or "none"),
             ("windows", ", ".join(w.name if w.span == w.step else f"{w.name}/{format_span(w.step)}" for w in windows)
              + f"; allowed lateness {settings.aggregate_lateness}"),
             ("late items", str(result.late)),
             ("left out", f"{result.duplicates} repeated records of an item, {len(result.future)} dated after now")]
    outcomes = check(expectations, result.alerts, sorted(i.published_at for i in items))
    write_plotly(out)
    (out / "report.html").write_text(render(f"Moodwire back-test — {Path(run.news_file).name}", facts, rules,
                                            chart_window, result.windows, result.alerts, end_of_news, outcomes,
                                            run.chart_all, early), encoding="utf-8")
    firing = len({(a.fingerprint, a.starts_at) for a in result.alerts if a.status == "firing"})  # episodes
    say(f"{len(ordered)} final windows, {len(result.alerts)} alert events ({firing} alerts fired) → "
        f"{out / 'alerts.jsonl'}, {out / 'windows.jsonl'}, {out / 'report.html'}")
    for lead in early:
        say(lead.line())
    failed = 0
    for outcome in outcomes:
        say(outcome.line())
        failed += not outcome.passed
    if expectations:
        say(f"{len(expectations) - failed} of {len(expectations)} expectations passed")
    return 1 if failed else 0


def _write_lines(path: Path, lines: list[bytes]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as fh:
        for line in lines:
            fh.write(line + b"\n")
    tmp.replace(path)
