"""Source tags: a tagged sentiment source is read with its tag in training, validation,
calibration and ``evaluate --read-as``; untagged text (served headlines) is read as is."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.serving.artefact import CONFIG_FILE, read_spec
from models.training.data import LabelledSet
from moodwire.errors import DataError, ModelError
from models.training.evaluate import evaluate
from models.training.sources import parse_sources, parse_tags, tag_sources
from tests.conftest import dataset

SOURCES = parse_sources(["tweets=a.csv", "news=b.csv"], "--sentiment-train")


def test_tags_go_before_the_rows_of_the_named_source_and_its_parts():
    sets = {"tweets": LabelledSet("sentiment", ["Stocks slide"], [0]),
            "news/wire": LabelledSet("sentiment", ["Bank fails"], [0], groups=["wire"])}
    tagged = tag_sources(sets, parse_tags(["tweets=tweet:"], SOURCES))
    assert tagged["tweets"].texts == ["tweet: Stocks slide"] and tagged["tweets"].labels == [0]
    assert tagged["news/wire"] is sets["news/wire"]
    assert tag_sources(sets, parse_tags(["news=  wire  story "], SOURCES))["news/wire"].texts == ["wire story Bank fails"]


@pytest.mark.parametrize("values, fragment", [
    (["tweets"], "write NAME=TAG"), (["tweets= "], "write NAME=TAG"),
    (["blogs=blog:"], "'blogs' is not a sentiment training source"),
    (["tweets=a", "tweets=b"], "tagged twice"),
    (["tweets=a", "news=b"], "leave at least one sentiment source untagged"),
])
def test_bad_tags_are_named(values, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_tags(values, SOURCES)


@pytest.fixture(scope="module")
def tagged_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tagged") / "model"
    train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=[f"tweets={dataset('sent_train.csv')}", f"news={dataset('news_train.csv')}"],
        sentiment_valid=[f"tweets={dataset('sent_valid.csv')}", f"news={dataset('news_valid.csv')}"],
        output=str(out), limit=48, epochs=1, batch_size=16, progress=False, checkpoint_every=0,
        source_tags=["tweets=tweet:"]))
    return out


@pytest.mark.slow
def test_a_tagged_run_records_its_tag_and_validates_the_source_read_with_it(tagged_model: Path, tmp_path: Path):
    spec = read_spec(tagged_model)
    assert spec.source_tags == {"tweets": "tweet:"}
    assert spec.provenance["config"]["source_tags"] == ["tweets=tweet:"]
    rows = Path(dataset("sent_valid.csv")).read_text(encoding="utf-8").splitlines()[:49]
    head = tmp_path / "tweets_head.csv"
    head.write_text("\n".join(rows) + "\n", encoding="utf-8")
    as_tweets = evaluate(tagged_model, "sentiment", head, read_as="tweets")
    recorded = spec.metrics["validation"]["sentiment_sources"]["tweets"]
    assert as_tweets["n"] == recorded["n"] == 48 and as_tweets["read_as"] == "tweets"
    assert as_tweets["accuracy"] == pytest.approx(recorded["accuracy"])
    assert evaluate(tagged_model, "sentiment", head)["read_as"] is None


@pytest.mark.slow
def test_evaluate_names_an_unknown_tag_in_one_line(tagged_model: Path):
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "evaluate", "--task", "sentiment", "--data",
                             dataset("sent_valid.csv"), "--model", str(tagged_model), "--read-as", "blogs"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "has no source tag 'blogs' (its tagged sources: tweets)" in result.stderr


@pytest.mark.slow
def test_an_average_keeps_the_tags_and_refuses_a_conflict(tagged_model: Path, tiny_model: Path, tmp_path: Path):
    from models.training.extract import average_models

    average_models([tiny_model, tagged_model], tmp_path / "avg")
    assert read_spec(tmp_path / "avg").source_tags == {"tweets": "tweet:"}
    other = tmp_path / "other"
    shutil.copytree(tagged_model, other)
    config = json.loads((other / CONFIG_FILE).read_text())
    (other / CONFIG_FILE).write_text(json.dumps({**config, "source_tags": {"tweets": "tw:"}}))
    with pytest.raises(ModelError, match="tags the source 'tweets' as 'tw:'"):
        average_models([tagged_model, other], tmp_path / "bad")


@pytest.mark.slow
def test_continuing_a_tagged_model_keeps_its_tag(tagged_model: Path, tmp_path: Path):
    from models.training.train import TrainConfig, train

    def run(tags: list[str], out: str) -> None:
        train(TrainConfig(
            topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
            sentiment_train=[f"tweets={dataset('sent_train.csv')}", f"news={dataset('news_train.csv')}"],
            sentiment_valid=[f"tweets={dataset('sent_valid.csv')}"], output=str(tmp_path / out),
            limit=16, epochs=1, batch_size=16, progress=False, checkpoint_every=0, calibrate=False,
            init_from=str(tagged_model), source_tags=tags))

    with pytest.raises(ModelError, match="pass --source-tag tweets=tweet: to continue it"):
        run([], "untagged")
    run(["tweets=tweet:"], "continued")
    assert read_spec(tmp_path / "continued").source_tags == {"tweets": "tweet:"}
