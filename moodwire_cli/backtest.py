"""``moodwire backtest``: recorded news through the model, the windows and the alert rules, offline
(``streams.backtest``)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from moodwire_cli.context import settings_of


def _instant(ctx, param, value):
    if value is None:
        return None
    from streams.ingest.normalize import parse_time

    text = value.strip()
    if len(text) == 10:  # a date: its start, UTC
        text += "T00:00:00+00:00"
    parsed = parse_time(text)
    if parsed is None:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2023-03-01 or 2023-03-01T12:00Z)")
    return parsed.astimezone(timezone.utc)


@click.command()
@click.argument("news_file", type=click.Path(dir_okay=False))
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False), required=True, help="YAML alert rules.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for alerts.jsonl, windows.jsonl, report.html (with plotly.min.js beside it) and the "
                   "classified items' cache.")
@click.option("--from", "start", callback=_instant, default=None, help="Only news published at or after (ISO 8601).")
@click.option("--to", "end", callback=_instant, default=None, help="Only news published before (ISO 8601).")
@click.option("--windows", default=None,
              help="Windows as span[/step],… [default: those of MOODWIRE_AGGREGATE_WINDOWS the rules use].")
@click.option("--expect", "expect_file", type=click.Path(dir_okay=False), default=None,
              help="Rule-test file: expectations checked against the alerts (exit 1 when one fails).")
@click.option("--watchlists", "watchlists_file", type=click.Path(dir_okay=False), default=None,
              help="Watchlist file whose lists get windows and alerts too [default: MOODWIRE_WATCHLISTS].")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory [default: MOODWIRE_MODEL or the committed model].")
@click.option("--chart-all", is_flag=True, help="Chart every key in the report, not only those an alert fired on.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def backtest(ctx: click.Context, news_file, rules_file, out, start, end, windows, expect_file, watchlists_file,
             model_dir, chart_all, progress) -> None:
    """Replay recorded news through the model, the windows and the alert rules, offline."""
    from streams.backtest.run import BacktestRun
    from streams.backtest.run import backtest as run_backtest

    settings = settings_of(ctx, model=model_dir)

    def engine():
        from models.serving.bundle import open_engine

        return open_engine(settings.model, **settings.engine_options)

    started = datetime.now(timezone.utc)
    run = BacktestRun(news_file, rules_file, out, start, end, windows, expect_file, progress,
                      watchlists_file or (str(settings.watchlists) if settings.watchlists else None), chart_all)
    status = run_backtest(settings, run, engine, click.echo)
    click.echo(f"back-test took {(datetime.now(timezone.utc) - started).total_seconds():.0f} s")
    sys.exit(status)
