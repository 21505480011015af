"""``moodwire notify`` (delivery of alerts to receivers, its history) and ``moodwire silence``."""

from __future__ import annotations

import json

import click

from moodwire_cli.context import safe_url, settings_of, stop_event
from moodwire.settings import Settings


def _notify_config(settings: Settings, path: str | None):
    from alerts.routing import NotifyConfigError, load_notify_config

    path = path or settings.notify_config
    if path is None:
        raise NotifyConfigError("no notifier configuration: pass --config-file FILE or set MOODWIRE_NOTIFY_CONFIG "
                                "(an example: config/notify.example.yaml)")
    return path, load_notify_config(path)


@click.group(invoke_without_command=True)
@click.option("--config-file", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Routing tree and receivers [default: MOODWIRE_NOTIFY_CONFIG].")
@click.pass_context
def notify(ctx: click.Context, config_file: str | None) -> None:
    """Deliver alert events from the alerts topic to receivers (routing, grouping, silences,
    retries; at least once per receiver and event, each notification under one idempotency key
    a receiver can drop repeats by). Sub-commands: history."""
    if ctx.invoked_subcommand is not None:
        return
    import os

    from alerts.notify import Notifier
    from moodwire.logs import setup_logging
    from moodwire.metrics import StageMetrics
    from moodwire.store import open_store
    from moodwire.topics import ALERTS, DEADLETTER, require_topics

    settings = settings_of(ctx)
    setup_logging(settings.log_level, settings.log_json)
    path, config = _notify_config(settings, config_file)
    require_topics(settings.kafka_bootstrap, (ALERTS, DEADLETTER))
    metrics = StageMetrics("notify")
    metrics.serve_for(settings)
    notifier = Notifier(settings, config, open_store(settings.store), metrics, environ=dict(os.environ))
    click.echo(f"notifying from alerts on {settings.kafka_bootstrap}: {len(config.receivers)} receivers "
               f"({', '.join(f'{r.name} ({r.kind})' for r in config.receivers)}) from {path}; outbox in "
               f"{safe_url(settings.store)} (Ctrl-C stops)", err=True)
    notifier.run(stop_event())


@notify.command("history")
@click.option("--limit", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def notify_history(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The newest notifications: receiver, alert, status (sent, pending, failed, silenced, suppressed), why."""
    from alerts.outbox import history
    from moodwire.store import open_store

    rows = history(open_store(settings_of(ctx).store), limit)
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, default=str))
        else:
            click.echo(f"{r['created_at']:%Y-%m-%d %H:%M:%S}  {r['receiver']:<16} {r['status']:<10} "
                       f"{r['alert_status']:<8} {r['rule']} on {r['topic']} #{r['seq']}"
                       + (f"  attempts {r['attempts']}" if r['attempts'] else "")
                       + (f"  ({r['reason'] or r['last_error']})" if (r['reason'] or r['last_error']) else ""))
    if not rows and not as_json:
        click.echo("no notifications yet")


@click.group()
def silence() -> None:
    """Silences: alerts they match are recorded but not sent until they end."""


@silence.command("add")
@click.option("--matcher", "-m", "matchers", multiple=True, required=True,
              help='name=value, name!=value, name=~regex or name!~regex; names: rule, topic, severity, window, labels.')
@click.option("--for", "duration", default=None, help="How long, e.g. 2h [default: 1h].")
@click.option("--until", default=None, help="End time (ISO 8601, UTC if no offset).")
@click.option("--comment", default="", help="Why (shown in lists and the dashboard).")
@click.option("--by", "created_by", default=None, help="Who [default: $USER].")
@click.pass_context
def silence_add(ctx: click.Context, matchers, duration, until, comment, created_by) -> None:
    import getpass
    from datetime import datetime, timezone

    from alerts.outbox import add_silence
    from moodwire.spans import parse_span
    from moodwire.store import open_store

    now = datetime.now(timezone.utc)
    if duration and until:
        raise click.UsageError("give --for or --until, not both")
    try:
        if until:
            ends = datetime.fromisoformat(until)
            ends = ends if ends.tzinfo else ends.replace(tzinfo=timezone.utc)
        else:
            ends = now + parse_span(duration or "1h")
        sid = add_silence(open_store(settings_of(ctx).store), list(matchers), now, ends,
                          created_by or getpass.getuser(), comment)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(f"silence {sid} until {ends.isoformat()}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the ended ones.")
@click.pass_context
def silence_list(ctx: click.Context, show_all: bool) -> None:
    from alerts.outbox import list_silences
    from moodwire.store import open_store

    found = list_silences(open_store(settings_of(ctx).store), active_only=not show_all)
    for s in found:
        click.echo(f"{s.id}  {s.starts_at:%Y-%m-%d %H:%M} → {s.ends_at:%Y-%m-%d %H:%M}  "
                   f"{' '.join(str(m) for m in s.matchers)}  by {s.created_by}" + (f": {s.comment}" if s.comment else ""))
    if not found:
        click.echo("no silences")


@silence.command("expire")
@click.argument("silence_id")
@click.pass_context
def silence_expire(ctx: click.Context, silence_id: str) -> None:
    from alerts.outbox import expire_silence
    from moodwire.store import open_store

    if not expire_silence(open_store(settings_of(ctx).store), silence_id):
        raise click.ClickException(f"no active silence {silence_id} (see `moodwire silence list`)")
    click.echo(f"silence {silence_id} ended")
