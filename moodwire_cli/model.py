"""``moodwire train``, ``evaluate``, ``export``, ``average``, ``calibrate`` and ``bundle``: the fine-tuning recipe's commands."""

from __future__ import annotations

import dataclasses
import json

import click

from models.training.config import DATA_DEFAULTS, ENTITY_DEFAULTS, TrainConfig
from moodwire_cli.config_options import config_of, config_options
from moodwire_cli.context import data_path, settings_of

_HELP = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}  # written once, in TrainConfig
topic_valid_option = click.option("--topic-valid", type=click.Path(dir_okay=False), help=_HELP["topic_valid"])
sentiment_valid_option = click.option("--sentiment-valid", multiple=True, metavar="NAME=PATH",
                                      help=_HELP["sentiment_valid"])


def _default_data(settings, name: str) -> str | list[str]:
    """The data folder's file for ``name`` (a key of DATA_DEFAULTS), or its NAME=PATH sources."""
    default = DATA_DEFAULTS[name]
    if isinstance(default, str):
        return data_path(settings, default)
    return [f"{source}={data_path(settings, path)}" for source, path in (entry.split("=", 1) for entry in default)]


def _validation_files(settings, topic_valid, sentiment_valid) -> tuple[str, list[str]]:
    """The validation files named on the command line, or the defaults under the data folder."""
    return (topic_valid or _default_data(settings, "topic_valid"),
            list(sentiment_valid) or _default_data(settings, "sentiment_valid"))


@click.command()
@config_options(TrainConfig)
@click.pass_context
def train(ctx: click.Context, **values) -> None:
    """Fine-tune the topic + sentiment model (LoRA by default) and save it."""
    from models.training.train import train as run_training

    settings = settings_of(ctx)
    from pathlib import Path

    from_folder = not values["sentiment_train"]
    for name in DATA_DEFAULTS:  # the data folder's files where none is named
        if not values[name]:
            values[name] = _default_data(settings, name)
    # A run that reads the data folder's sentiment sources also learns the entity head from its
    # entity files, when the folder has them.
    for name, path in (("entity_train", ENTITY_DEFAULTS[0]), ("entity_valid", ENTITY_DEFAULTS[1])):
        if from_folder and not values[name] and Path(data_path(settings, path)).is_file():
            values[name] = data_path(settings, path)
    cfg = config_of(TrainConfig, values)
    metrics = run_training(cfg)
    click.echo(json.dumps({"output": cfg.output, "validation": metrics}, indent=2))


@click.command()
@click.option("--task", type=click.Choice(["topic", "sentiment", "entity"]), required=True,
              help="entity: the sentiment toward a named entity (a file with text, entity and label columns), "
                   "beside the headline-level baseline.")
@click.option("--data", type=click.Path(dir_okay=False), required=True,
              help="CSV or JSONL with text and label columns (and entity for --task entity).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory [default: MOODWIRE_MODEL or the committed model].")
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Write the confusion matrix and the reliability diagram here.")
@click.option("--int8", is_flag=True, help="Evaluate the int8 CPU serving path (MOODWIRE_CPU_RUNTIME) instead of fp32.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--read-as", default=None, metavar="SOURCE",
              help="Read the texts with the tag of this tagged training source (see the model's source_tags), "
                   "as that source was in training [default: untagged, as served headlines are read].")
@click.pass_context
def evaluate(ctx: click.Context, task, data, model_dir, png, int8, as_json, read_as) -> None:
    """Accuracy, macro-F1, per-class and per-source figures, calibration and confusion matrix on labelled data."""
    from models.serving.artefact import DEFAULT_MODEL_DIR
    from models.training.evaluate import evaluate as run_evaluation
    from models.training.evaluate import format_report

    settings = settings_of(ctx)
    model_dir = model_dir or settings.model or str(DEFAULT_MODEL_DIR)
    options = settings.engine_options
    if task == "entity":
        from models.training.evaluate_entity import evaluate_entities, format_entity_report

        if png or read_as:
            raise click.UsageError("--png and --read-as are for --task topic or sentiment")
        report = evaluate_entities(model_dir, data, quantized=int8, runtime=options["runtime"],
                                   cache_dir=options["cache_dir"])
        click.echo(json.dumps(report, indent=2) if as_json else format_entity_report(report))
        return
    report = run_evaluation(model_dir, task, data, png=png, quantized=int8, runtime=options["runtime"],
                            cache_dir=options["cache_dir"], read_as=read_as)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@click.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model to export [default: MOODWIRE_MODEL or the committed model].")
@click.option("--output", "-o", type=click.Path(file_okay=False), required=True, help="Directory to write.")
@click.option("--half", is_flag=True, help="Store the weights in fp16 (half the size).")
@click.option("--lora-rank", type=int, default=None,
              help="Instead: store a full fine-tune as a LoRA adapter of this rank (truncated SVD of each weight's "
                   "change; loads with the packaged base like any LoRA model).")
@click.option("--int8-factors", is_flag=True,
              help="With --lora-rank: store the adapter's factors in int8, one scale per rank component "
                   "(about half the size of fp16; read back as floats at load).")
@click.option("--version", default=None, help="With --lora-rank: the version the cut model records [default: "
                                                "the source's].")
@click.pass_context
def export(ctx: click.Context, model_dir, output, half, lora_rank, int8_factors, version) -> None:
    """Write a self-contained model: LoRA merged into the encoder, tokenizer included, no peft needed.
    With --lora-rank: a full fine-tune cut to the size of a LoRA adapter instead."""
    from models.serving.artefact import DEFAULT_MODEL_DIR, export_model

    settings = settings_of(ctx)
    source = model_dir or settings.model or str(DEFAULT_MODEL_DIR)
    if lora_rank is not None:
        from models.training.extract import lora_from_full

        report = lora_from_full(source, output, lora_rank, half=half, int8_factors=int8_factors, version=version)
        click.echo(f"wrote {output}: LoRA rank {report['rank']} over {report['layers']} layers, keeping "
                   f"{report['kept_energy_mean']:.2%} of the weight changes' energy on average "
                   f"({report['kept_energy_min']:.2%} the least); measure it with moodwire evaluate")
        return
    if int8_factors:
        raise click.UsageError("--int8-factors stores a LoRA adapter's factors; it needs --lora-rank")
    if version:
        raise click.UsageError("--version names the version of a cut model; it needs --lora-rank")
    out = export_model(source, output, half=half)
    click.echo(f"exported to {out} (load it with MOODWIRE_MODEL={out})")


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--output", "-o", type=click.Path(file_okay=False), required=True, help="Directory to write.")
@click.option("--version", default="dev", show_default=True, help="Version recorded in the model.")
def average(models, output, version) -> None:
    """Average the weights of models fine-tuned from one start (a model soup): a full model."""
    from models.training.extract import average_models

    out = average_models(list(models), output, version=version)
    click.echo(f"wrote {out}: the mean of {len(models)} models (full fine-tune format); fit its temperatures "
               f"with moodwire calibrate --model {out}")


@click.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False, exists=True), required=True)
@topic_valid_option
@sentiment_valid_option
@click.option("--entity-valid", type=click.Path(dir_okay=False), default=None,
              help="Entity validation file, for a model with the entity head [default: "
                   "<data_dir>/entities/entity_valid.csv].")
@click.pass_context
def calibrate(ctx: click.Context, model_dir, topic_valid, sentiment_valid, entity_valid) -> None:
    """Fit the model's temperatures (one per head) on validation rows and store them in it."""
    from models.serving.artefact import read_spec
    from models.training.data import load_labelled
    from models.serving.labels import LabelMap
    from models.training.sources import load_sources, parse_sources, tag_sources
    from models.training.validation import recalibrate

    topic_valid, sentiment_valid = _validation_files(settings_of(ctx), topic_valid, sentiment_valid)
    spec = read_spec(model_dir)
    topic = load_labelled(topic_valid, LabelMap("topic", tuple(spec.topic_labels)))
    sources = parse_sources(sentiment_valid, "--sentiment-valid")
    sentiment = load_sources(sources, LabelMap("sentiment", tuple(spec.sentiment_labels)))
    entities = None
    if spec.entity:
        from pathlib import Path

        from models.training.entities import load_entities

        entity_valid = entity_valid or data_path(settings_of(ctx), ENTITY_DEFAULTS[1])
        if not Path(entity_valid).is_file():
            raise click.UsageError(f"{model_dir} has an entity head: give its validation file with --entity-valid "
                                   f"({entity_valid} does not exist)")
        entities = load_entities(entity_valid, LabelMap("sentiment", tuple(spec.sentiment_labels)))
    result = recalibrate(model_dir, topic, tag_sources(sentiment, spec.source_tags), entities)
    entity = (f", entity {result['entity_temperature']} (ECE {result['entity_ece_before']} → "
              f"{result['entity_ece_after']})") if entities is not None else ""
    click.echo(f"{model_dir}: topic temperature {result['topic_temperature']} (ECE {result['topic_ece_before']} → "
               f"{result['topic_ece_after']}), sentiment {result['sentiment_temperature']} "
               f"(ECE {result['sentiment_ece_before']} → {result['sentiment_ece_after']}){entity}")


@click.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model to bundle [default: MOODWIRE_MODEL or the committed model].")
@click.option("--output", "-o", type=click.Path(file_okay=False), required=True, help="Directory to write.")
@click.pass_context
def bundle(ctx: click.Context, model_dir, output) -> None:
    """Write a serving bundle: the ONNX graphs the CPU runtime runs (int8 and fp32), the tokenizer
    and the labels. Stages given a bundle as MOODWIRE_MODEL run it without PyTorch (the lean CPU
    image); MOODWIRE_INT8 picks the graph."""
    from models.serving.artefact import DEFAULT_MODEL_DIR
    from models.serving.bundle import write_bundle

    source = model_dir or settings_of(ctx).model or str(DEFAULT_MODEL_DIR)
    out = write_bundle(source, output)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    click.echo(f"wrote {out} ({size / 1e6:.1f} MB); serve it with MOODWIRE_MODEL={out}")
