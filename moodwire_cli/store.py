"""``moodwire store prune``: apply the retention settings (MOODWIRE_STORE_KEEP_*) to the store."""

from __future__ import annotations

import click

from moodwire_cli.context import safe_url, settings_of, stop_event


@click.group()
def store() -> None:
    """The store: retention."""


@store.command("prune")
@click.option("--every", default=None, help="Keep running and prune every DURATION (e.g. 1h) [default: once].")
@click.pass_context
def prune_cmd(ctx: click.Context, every: str | None) -> None:
    """Delete what MOODWIRE_STORE_KEEP_* no longer keeps, in small transactions (writers go on)."""
    from moodwire.retention import prune
    from moodwire.spans import parse_span
    from moodwire.store import open_store

    settings = settings_of(ctx)
    try:
        interval = parse_span(every).total_seconds() if every else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None
    engine = open_store(settings.store)
    policy = settings.retention
    click.echo(f"pruning {safe_url(settings.store)}: items {settings.store_keep_items}, windows "
               f"{settings.store_keep_windows}, alerts {settings.store_keep_alerts}, deliveries "
               f"{settings.store_keep_deliveries}" + (f", every {every}" if every else ""), err=True)
    stop = stop_event() if interval else None
    while True:
        done = prune(engine, policy)
        click.echo("deleted " + ", ".join(f"{table} {n}" for table, n in done.items()))
        if stop is None or stop.wait(interval):
            return
