"""``moodwire broker`` and ``moodwire topics``: the embedded Kafka-protocol broker and the topics."""

from __future__ import annotations

import click

from moodwire.errors import BrokerError, MoodwireError
from moodwire_cli.context import settings_of


@click.command()
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


@click.group()
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
