"""``moodwire demo``, ``moodwire dashboard`` and ``moodwire hash-password``."""

from __future__ import annotations

import click

from moodwire_cli.context import safe_url, settings_of


@click.command()
@click.option("--broker-port", type=click.IntRange(1, 65535), default=9092, show_default=True)
@click.option("--dashboard-port", type=click.IntRange(1, 65535), default=8050, show_default=True)
@click.option("--speedup", type=float, default=3600.0, show_default=True,
              help="Replay the sample this many times faster than recorded (4.7 days → about 2 minutes).")
@click.option("--metrics-base", type=click.IntRange(0, 65000), default=0,
              help="Serve Prometheus metrics of classify / aggregate / notify on this port + 1, 2, 3 (0: off).")
@click.pass_context
def demo(ctx: click.Context, broker_port: int, dashboard_port: int, speedup: float, metrics_base: int) -> None:
    """The whole pipeline on embedded defaults: broker, classify, aggregate with alert rules,
    notify, dashboard, and the bundled sample replayed time-compressed. Ctrl-C stops it all."""
    import signal

    from moodwire_cli.demo import Demo

    settings = settings_of(ctx)
    runner = Demo(settings.home / "demo", broker_port, dashboard_port, speedup,
                  say=lambda text: click.echo(text), metrics_base=metrics_base)

    def _stop(signum, frame) -> None:
        runner.stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    ctx.exit(runner.run())



@click.command()
@click.option("--host", default=None, help="[default: MOODWIRE_DASHBOARD_HOST]")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="[default: MOODWIRE_DASHBOARD_PORT]")
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Plotly Dash dashboard: trends per topic, alerts on the charts, the headlines behind them."""
    from dashboards.app import create_app
    from dashboards.passwords import UsersFile
    from moodwire.errors import DashboardError
    from moodwire.logs import setup_logging
    from moodwire.store import open_store

    settings = settings_of(ctx)
    setup_logging(settings.log_level, settings.log_json)
    if settings.dashboard_users is None and not settings.dashboard_auth_header:
        raise DashboardError("the dashboard is never open to everyone: set MOODWIRE_DASHBOARD_USERS to a YAML file "
                             "of users (`users: {name: hash}`, hashes from `moodwire hash-password`) or "
                             "MOODWIRE_DASHBOARD_AUTH_HEADER behind an authenticating reverse proxy")
    users = UsersFile(settings.dashboard_users) if settings.dashboard_users else UsersFile(None, {})
    rules = []
    if settings.alert_rules is not None:  # drawn on the charts: the thresholds the alerts judge by
        from alerts.rules import load_rules

        rules = load_rules(settings.alert_rules, [w.name for w in settings.windows])
    app = create_app(settings, open_store(settings.store), users, rules)
    host, port = host or settings.dashboard_host, port or settings.dashboard_port
    click.echo(f"dashboard on http://{host}:{port}/ (waitress, {settings.dashboard_threads} threads; "
               f"store {safe_url(settings.store)}, {len(users)} users"
               f"{', trusting header ' + settings.dashboard_auth_header if settings.dashboard_auth_header else ''}"
               f"{', client addresses from proxy ' + settings.dashboard_trusted_proxy if settings.dashboard_trusted_proxy else ''})",
               err=True)
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # stop like Ctrl-C: exit status 0
    from waitress import serve

    from moodwire.runtime import tune_gc

    tune_gc()  # collections walking the app's objects turned ordinary requests into slow outliers
    try:
        proxy = {} if settings.dashboard_trusted_proxy is None else {  # the client's address from X-Forwarded-For
            "trusted_proxy": settings.dashboard_trusted_proxy, "trusted_proxy_count": settings.dashboard_trusted_proxy_count,
            "trusted_proxy_headers": {"x-forwarded-for"}, "clear_untrusted_proxy_headers": True}
        serve(app.server, host=host, port=port, threads=settings.dashboard_threads, ident="moodwire", **proxy)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                             "(choose another --port or MOODWIRE_DASHBOARD_PORT)") from None


@click.command("hash-password")
def hash_password_cmd() -> None:
    """Print a password hash for MOODWIRE_DASHBOARD_USERS (`users: {name: <hash>}`).

    The password is asked twice on the terminal (the prompts on stderr), or read as the first
    line of stdin when that is not a terminal (`echo pw | moodwire hash-password`); only the
    hash is printed on stdout. It is never an argument: arguments show in the process list."""
    import sys

    from dashboards.passwords import hash_password

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("no password given: type one at the prompt, or pipe it on stdin")
    click.echo(hash_password(password))
