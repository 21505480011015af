"""``moodwire train``'s options are made from TrainConfig: one per field (nested LoRA fields
too), each parsed back to the value the field would have."""

from __future__ import annotations

import dataclasses
import typing

import click
from click.testing import CliRunner

from models.serving.lora import LoraSettings
from models.training.config import TrainConfig
from moodwire_cli.config_options import config_of, config_options
from moodwire_cli.model import train as train_command


def _names(config_type, prefix=""):
    hints = typing.get_type_hints(config_type)
    return [name for f in dataclasses.fields(config_type) for name in
            (_names(hints[f.name], f"{prefix}{f.name}_") if dataclasses.is_dataclass(hints[f.name])
             else [prefix + f.name])]


def _parsed(args: list[str]) -> TrainConfig:
    got = {}

    @click.command()
    @config_options(TrainConfig)
    def command(**values):
        got["config"] = config_of(TrainConfig, values)

    result = CliRunner().invoke(command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return got["config"]


def test_every_field_of_train_config_is_an_option_of_moodwire_train_in_field_order():
    params = [p.name for p in train_command.params if p.name != "help"]
    assert params == _names(TrainConfig)
    assert all(p.help for p in train_command.params if isinstance(p, click.Option))


def test_options_left_out_give_the_fields_defaults_and_given_ones_their_values():
    required = ["--topic-train", "t.csv", "--topic-valid", "v.csv", "--sentiment-train", "news=n.csv",
                "--sentiment-valid", "news=nv.csv", "-o", "out"]
    plain = _parsed(required)
    assert plain == TrainConfig(topic_train="t.csv", topic_valid="v.csv", sentiment_train=["news=n.csv"],
                                sentiment_valid=["news=nv.csv"], output="out")
    given = _parsed([*required, "--lora-r", "96", "--lora-target-modules", "query", "--lora-target-modules", "value",
                     "--no-resume", "--lr", "0.0005", "--warmup-ratio", "0.1", "--source-tag", "tweets=tweet:",
                     "--teacher", "topic=m1", "--finetune", "full", "--version", "2.0"])
    assert given == dataclasses.replace(
        plain, lora=LoraSettings(r=96, target_modules=["query", "value"]), resume=False, lr=0.0005, warmup_ratio=0.1,
        source_tags=["tweets=tweet:"], teacher=["topic=m1"], finetune="full", version="2.0")


def test_a_value_outside_a_fields_choices_is_refused_in_one_line():
    result = CliRunner().invoke(train_command, ["-o", "out", "--finetune", "half"])
    assert result.exit_code == 2 and "Invalid value for '--finetune'" in result.output
