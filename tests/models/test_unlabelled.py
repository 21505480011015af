"""Unlabelled sources in training (``--unlabelled NAME=PATH``): rows that learn from a teacher
alone. The loss of such rows, what the loader keeps and drops, a real run that brings the
student towards its teacher on those texts, and the errors a user can cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from models.serving.artefact import load_model, read_spec
from models.training.distill import distilled_loss
from moodwire.errors import DataError, ModelError
from models.serving.predict import predict_logits
from models.training.sources import NO_LABEL, SourceSpec, load_unlabelled
from tests.conftest import dataset, train_args
from tests.models.helpers import kl_per_row



def test_unlabelled_rows_learn_from_the_teacher_alone():
    torch.manual_seed(1)
    logits = torch.randn(4, 3)
    teacher = torch.randn(4, 3).div(2.0).softmax(-1)
    kl = kl_per_row(teacher, logits.div(2.0).softmax(-1))
    none_labelled = torch.zeros(4, dtype=torch.bool)
    alone = distilled_loss(None, logits, teacher, alpha=0.3, temperature=2.0, labelled=none_labelled)
    assert alone.item() == pytest.approx(4.0 * kl.mean().item(), rel=1e-5)  # full weight, whatever alpha

    # two labelled rows with soft targets, two unlabelled: the label weighs (2 - 0.3·2) / 4
    labelled = torch.tensor([True, True, False, False])
    mixed = distilled_loss(torch.tensor(0.9), logits, teacher, alpha=0.3, temperature=2.0, labelled=labelled)
    expected = (2 - 0.6) / 4 * 0.9 + (0.6 + 2) / 4 * 4.0 * kl.mean().item()
    assert mixed.item() == pytest.approx(expected, rel=1e-5)

    orphan = teacher.clone()
    orphan[3] = float("nan")  # an unlabelled row no teacher covers
    with pytest.raises(ModelError, match="neither a label nor a teacher's soft target"):
        distilled_loss(torch.tensor(0.9), logits, orphan, 0.3, 2.0, labelled)


def test_the_loader_keeps_distinct_unseen_texts(tmp_path: Path):
    feed = tmp_path / "feed.csv"
    pd.DataFrame({"published_at": ["2023-03-10T10:00:00Z"] * 5,
                  "title": ["SVB shares halted", " SVB shares halted ", "", "Held-out headline", "Regulators close SVB"]}
                 ).to_csv(feed, index=False)
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "Bank run spreads"}\n{"text": null}\n')
    got = load_unlabelled([SourceSpec("feed", str(feed)), SourceSpec("more", str(texts))], {"Held-out headline"})
    assert got["feed"].texts == ["SVB shares halted", "Regulators close SVB"]
    assert got["feed"].labels == [NO_LABEL, NO_LABEL]
    assert got["more"].texts == ["Bank run spreads"]

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"headline": ["x"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="no 'text' or 'title' column .*columns: headline"):
        load_unlabelled([SourceSpec("bad", str(bad))], set())
    with pytest.raises(DataError, match="no text is left"):
        load_unlabelled([SourceSpec("feed", str(feed))],
                        {"SVB shares halted", "Held-out headline", "Regulators close SVB"})


def _gap(model_dir: Path, teacher_dir: Path, texts: list[str]) -> float:
    """Mean KL(teacher ‖ model) of the sentiment head on these texts."""
    model, tokenizer, spec = load_model(model_dir)
    teacher, teacher_tokenizer, teacher_spec = load_model(teacher_dir)
    student = predict_logits(model, tokenizer, texts, spec.max_length)[1].softmax(-1)
    target = predict_logits(teacher, teacher_tokenizer, texts, teacher_spec.max_length)[1].softmax(-1)
    return float(kl_per_row(target, student).mean())


def test_a_run_with_unlabelled_headlines_moves_the_student_towards_its_teacher(tiny_model: Path, tmp_path: Path):
    from models.training.train import TrainConfig, train

    replay = dataset("replay.csv")
    common = dict(topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
                  sentiment_train=f"tweets={dataset('sent_train.csv')}",
                  sentiment_valid=dataset("sent_valid.csv"), limit=64, epochs=1, batch_size=16,
                  progress=False, checkpoint_every=0, seed=5)
    without = tmp_path / "without"
    train(TrainConfig(output=str(without), **common))
    with_feed = tmp_path / "with"
    train(TrainConfig(output=str(with_feed), teacher=[f"svb={tiny_model}"], unlabelled=[f"svb={replay}"], **common))

    spec = read_spec(with_feed)
    assert spec.provenance["sentiment_sources"]["unlabelled"] == {"svb": 64}
    assert spec.provenance["config"]["unlabelled"] == [f"svb={replay}"]
    assert "unlabelled" not in read_spec(without).provenance["config"]
    titles = load_unlabelled([SourceSpec("svb", replay)], set())["svb"].texts[:64]
    assert _gap(with_feed, tiny_model, titles) < _gap(without, tiny_model, titles)


def test_an_unlabelled_source_needs_a_teacher_and_its_own_name(tiny_model: Path, tmp_path: Path):
    from models.training.train import TrainConfig, train

    common = dict(topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
                  sentiment_train=f"tweets={dataset('sent_train.csv')}",
                  sentiment_valid=dataset("sent_valid.csv"), output=str(tmp_path / "m"), limit=8)
    replay = dataset("replay.csv")
    with pytest.raises(DataError, match="no --teacher covers 'svb'"):
        train(TrainConfig(unlabelled=[f"svb={replay}"], teacher=[f"tweets={tiny_model}"], **common))
    with pytest.raises(DataError, match="'tweets' already names a training source"):
        train(TrainConfig(unlabelled=[f"tweets={replay}"], teacher=[f"tweets={tiny_model}"], **common))
    assert not (tmp_path / "m").exists()

    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "train", "-o", str(tmp_path / "c"),
                             *train_args(),
                             "--unlabelled", f"svb={tmp_path / 'missing.csv'}", "--teacher", f"svb={tiny_model}",
                             "--limit", "8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "missing.csv does not exist" in result.stderr and "Traceback" not in result.stderr
