"""The pipeline's stages: ``moodwire ingest``, ``replay``, ``classify`` and ``aggregate``."""

from __future__ import annotations

import click

from moodwire_cli.context import safe_url, settings_of, stop_event


@click.command()
@click.option("--feeds", "feeds_file", type=click.Path(dir_okay=False), required=True, help="YAML list of feeds.")
@click.option("--once", is_flag=True, help="Poll every feed once, then exit.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Feeds polled at once.")
@click.option("--per-host", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Requests in flight to one host at most.")
@click.pass_context
def ingest(ctx: click.Context, feeds_file: str, once: bool, workers: int, per_host: int) -> None:
    """Poll RSS/Atom feeds and publish new, de-duplicated items to news.raw."""
    from moodwire.logs import setup_logging
    from moodwire.metrics import StageMetrics
    from moodwire.publish import Publisher
    from moodwire.store import open_store
    from streams.ingest.fetch import PoliteClient
    from streams.ingest.poller import Ingestor
    from streams.ingest.seen import SeenStore
    from streams.ingest.sources import load_feeds

    settings = settings_of(ctx)
    setup_logging(settings.log_level, settings.log_json)
    feeds = load_feeds(feeds_file)
    metrics = StageMetrics("ingest")
    metrics.serve_for(settings)
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
            ingestor.run(stop_event(), workers=workers)
    finally:
        publisher.close()
        client.close()


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--rate", type=float, default=None, help="Items per second.")
@click.option("--speedup", type=float, default=None, help="Keep recorded gaps, divided by this factor.")
@click.option("--shift-to-now", is_flag=True, help="Move publish times by whole days so the newest item lands within the last day "
              "(time of day kept: windows hold the same items on every run).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def replay(ctx: click.Context, file: str, rate: float | None, speedup: float | None, shift_to_now: bool,
           progress: bool) -> None:
    """Publish recorded news (JSONL or CSV: title, published_at[, url, source, body, lang]) to news.raw."""
    from datetime import datetime, timezone

    from tqdm import tqdm

    from moodwire.errors import BrokerError, ReplayError
    from moodwire.publish import Publisher
    from streams.ingest.replay import publish_replay, read_recorded, schedule
    from streams.ingest.replay import replay as run_replay

    settings = settings_of(ctx)
    plan = read_recorded(file, datetime.now(timezone.utc) if shift_to_now else None)
    for problem in plan.skipped:
        click.echo(f"skipped {problem}", err=True)
    offsets = schedule(plan.items, rate, speedup)
    publisher = Publisher(settings, "moodwire-replay")
    stop = stop_event()
    sent = 0
    try:
        with tqdm(total=len(plan.items), unit="item", disable=not progress, desc="replay") as bar:
            def send(items):
                nonlocal sent
                if stop.is_set():
                    raise click.Abort()
                publish_replay(publisher, items)
                sent += len(items)

            run_replay(plan.items, send, offsets, progress=bar.update)
    except BrokerError as exc:  # how far it got, so that a rerun can be judged (duplicates are dropped downstream)
        last = f", the last published at {plan.items[sent - 1].published_at.isoformat()}" if sent else ""
        raise ReplayError(f"replay stopped after {sent} of {len(plan.items)} items from {file}{last}: {exc}; "
                          "run it again once the broker is back (items sent twice count once)") from None
    finally:
        publisher.close()
    click.echo(f"replayed {sent} items from {file} to news.raw ({len(plan.skipped)} rows skipped)")


@click.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory [default: MOODWIRE_MODEL or the committed model].")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=None, help="[default: MOODWIRE_MAX_BATCH]")
@click.option("--max-wait-ms", type=click.IntRange(0, 60000), default=None, help="[default: MOODWIRE_MAX_WAIT_MS]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="[default: MOODWIRE_DEVICE]")
@click.pass_context
def classify(ctx: click.Context, model_dir, max_batch, max_wait_ms, device) -> None:
    """Consume news.raw, classify topic and sentiment in batches, produce news.scored."""
    stop = stop_event()  # first: Ctrl-C or SIGTERM while the model loads ends the command cleanly too
    from moodwire.logs import setup_logging
    from moodwire.errors import BrokerError
    from moodwire.topics import DEADLETTER, NEWS_RAW, NEWS_SCORED, require_topics

    settings = settings_of(ctx, max_batch=max_batch, max_wait_ms=max_wait_ms, device=device, model=model_dir)
    setup_logging(settings.log_level, settings.log_json)
    # Before torch and the model load (~25 s): a bad watchlist file, a missing broker or topic
    # is one line at once.
    lists = None
    if settings.watchlists:
        from moodwire.watchlists import load_watchlists

        lists = load_watchlists(settings.watchlists)  # their topic names are checked once the model is loaded
    try:
        require_topics(settings.kafka_bootstrap, (NEWS_RAW, NEWS_SCORED, DEADLETTER))
    except BrokerError:
        if stop.is_set():  # stopped while the broker was being looked for: that is no error
            click.echo("stopped while looking for the broker; nothing was read from news.raw")
            return
        raise
    from models.serving.bundle import open_engine
    from moodwire.metrics import StageMetrics
    from streams.classify.worker import ClassifyWorker

    engine = open_engine(settings.model, **settings.engine_options)
    if stop.is_set():
        click.echo("stopped while loading the model; nothing was read from news.raw")
        return
    matcher = None
    if lists is not None:
        from moodwire.watchlists import Matcher, check_topics

        check_topics(lists, tuple(engine.spec.topic_labels), settings.watchlists)
        matcher = Matcher(lists)
    metrics = StageMetrics("classify")
    metrics.serve_for(settings)
    worker = ClassifyWorker(settings, engine, metrics, matcher=matcher)
    click.echo(f"classifying news.raw -> news.scored with {engine.label} on {engine.device} "
               f"(batch <= {settings.max_batch}, wait <= {settings.max_wait_ms} ms"
               f"{f', {len(matcher.watchlists)} watchlists from {settings.watchlists}' if matcher else ''})")
    worker.run(stop)


@click.command()
@click.option("--sink/--no-sink", default=True, show_default=True,
              help="Also write scored items and windows into the store (MOODWIRE_STORE_URL).")
@click.option("--datadir", type=click.Path(file_okay=False), default=None,
              help="Folder for this worker's rocksdb tables [default: <home>/faust/<hostname>-<pid>].")
@click.pass_context
def aggregate(ctx: click.Context, sink, datadir) -> None:
    """Faust worker: rolling per-topic sentiment windows by publish time, from news.scored."""
    import os
    import socket

    from moodwire.metrics import StageMetrics
    from moodwire.topics import ALERTS, DEADLETTER, NEWS_SCORED, SENTIMENT_WINDOWS, require_topics
    from streams.aggregate.app import AggregateApp
    from streams.aggregate.process import run_worker

    settings = settings_of(ctx)
    require_topics(settings.kafka_bootstrap, (NEWS_SCORED, SENTIMENT_WINDOWS, DEADLETTER, ALERTS))
    metrics = StageMetrics("aggregate")
    metrics.serve_for(settings)
    datadir = datadir or str(settings.home / "faust" / f"{socket.gethostname()}-{os.getpid()}")
    rules = None
    if settings.alert_rules:
        from alerts.rules import load_rules

        rules = load_rules(settings.alert_rules, [w.name for w in settings.windows])
    app = AggregateApp(settings, sink=sink, datadir=datadir, metrics=metrics, rules=rules)
    click.echo(f"aggregating news.scored -> sentiment.windows (windows {settings.aggregate_windows}, "
               f"lateness {settings.aggregate_lateness}, store {settings.aggregate_store}"
               f"{', sink ' + safe_url(settings.store) if sink else ''}"
               f"{f', {len(rules)} alert rules from {settings.alert_rules}' if rules else ''})", err=True)
    run_worker(app, settings.log_level)
