"""Distillation in training (models/training/distill.py): the loss, the soft targets a real teacher gives,
a real run with two teachers, and the errors a user can cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.serving.artefact import read_spec, write_spec
from models.training.distill import TeacherCache, TeacherSpec, check_settings, distilled_loss, parse_teachers, soft_targets
from models.serving.engine import InferenceEngine
from moodwire.errors import DataError
from tests.conftest import dataset, train_args
from tests.models.helpers import kl_per_row



def test_the_loss_mixes_labels_and_soft_targets_by_the_covered_share():
    torch.manual_seed(0)
    logits, hard = torch.randn(4, 3), torch.tensor(0.7)
    teacher = torch.randn(4, 3).div(2.0).softmax(-1)
    student = logits.div(2.0).softmax(-1)
    kl = kl_per_row(teacher, student)

    full = distilled_loss(hard, logits, teacher, alpha=1.0, temperature=2.0)
    assert full.item() == pytest.approx(4.0 * kl.mean().item(), rel=1e-5)

    half = teacher.clone()
    half[2:] = float("nan")  # rows no teacher covers
    mixed = distilled_loss(hard, logits, half, alpha=0.5, temperature=2.0)
    share = 0.5 * 0.5
    assert mixed.item() == pytest.approx((1 - share) * 0.7 + share * 4.0 * kl[:2].mean().item(), rel=1e-5)

    nothing = torch.full((4, 3), float("nan"))
    assert distilled_loss(hard, logits, nothing, 0.5, 2.0) is hard
    assert distilled_loss(hard, logits, None, 0.5, 2.0) is hard


def test_soft_targets_are_the_teacher_s_probabilities_on_its_targets_only(tiny_model: Path):
    spec = read_spec(tiny_model)
    texts = {"topic": ["Fed holds rates", "Oil jumps on supply cut"],
             "sentiment": ["Shares crash on fraud probe", "Stocks soar to record", "Company holds annual meeting"]}
    sources = {"topic": ["topic", "topic"], "sentiment": ["tweets", "news/wsj", "news/sentfin"]}
    teachers = parse_teachers([f"tweets={tiny_model}"])
    soft = soft_targets(teachers, spec, texts, sources, temperature=1.0)
    assert soft["topic"] is None
    got = soft["sentiment"]
    assert torch.isnan(got[1:]).all() and not torch.isnan(got[0]).any()
    engine = InferenceEngine(tiny_model, device="cpu", int8=False)  # the serving path: calibrated probabilities
    served = engine.classify([texts["sentiment"][0]])[0].probs
    assert got[0].tolist() == pytest.approx([served[k] for k in spec.sentiment_labels], abs=1e-4)

    both = soft_targets(parse_teachers([f"topic,news={tiny_model}"]), spec, texts, sources, temperature=2.0)
    assert not torch.isnan(both["topic"]).any()
    assert torch.isnan(both["sentiment"][0]).all() and not torch.isnan(both["sentiment"][1:]).any()
    sharp = soft_targets(parse_teachers([f"news={tiny_model}"]), spec, texts, sources, temperature=1.0)
    # a higher temperature flattens the same prediction
    assert both["sentiment"][1].max() < sharp["sentiment"][1].max()


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None and b is None) or torch.allclose(a, b, atol=1e-6, equal_nan=True)


def test_a_teacher_cache_reuses_predictions_and_follows_the_teacher(tiny_model: Path, tmp_path: Path):
    spec = read_spec(tiny_model)
    texts = {"topic": ["Fed holds rates", "Oil jumps on supply cut"],
             "sentiment": ["Shares crash on fraud probe", "Stocks soar to record", "Company holds annual meeting"]}
    sources = {"topic": ["topic", "topic"], "sentiment": ["tweets", "news/wsj", "tweets"]}
    teachers = parse_teachers([f"topic,tweets={tiny_model}"])
    folder = tmp_path / "cache"
    plain = soft_targets(teachers, spec, texts, sources, 2.0)
    first = soft_targets(teachers, spec, texts, sources, 2.0, TeacherCache(str(folder)))
    entries = sorted(folder.glob("*.pt"))
    assert len(entries) == 2  # topic and sentiment, each over its covered rows
    again = soft_targets(teachers, spec, texts, sources, 2.0, TeacherCache(str(folder)))
    assert all(_same(plain[t], first[t]) and _same(first[t], again[t]) for t in plain)
    # logits are kept, so another distillation temperature reuses them
    cooler = soft_targets(teachers, spec, texts, sources, 1.0, TeacherCache(str(folder)))
    assert sorted(folder.glob("*.pt")) == entries
    assert all(_same(cooler[t], soft_targets(teachers, spec, texts, sources, 1.0)[t]) for t in plain)
    # what is read is the kept file: flat logits there give flat soft targets
    for entry in entries:
        rows, classes = torch.load(entry, weights_only=True).shape
        torch.save(torch.zeros(rows, classes), entry)
    flat = soft_targets(teachers, spec, texts, sources, 2.0, TeacherCache(str(folder)))
    assert torch.allclose(flat["topic"], torch.full_like(flat["topic"], 1 / len(spec.topic_labels)))
    # a changed teacher (recalibrated) is predicted afresh, not read from its old entries
    changed = tmp_path / "recalibrated"
    changed.mkdir()
    for item in tiny_model.iterdir():
        if item.is_file():
            (changed / item.name).write_bytes(item.read_bytes())
    spec.calibration = {"topic_temperature": 3.0, "sentiment_temperature": 3.0}
    write_spec(spec, changed)
    other = parse_teachers([f"topic,tweets={changed}"])
    fresh = soft_targets(other, spec, texts, sources, 2.0, TeacherCache(str(folder)))
    assert len(list(folder.glob("*.pt"))) == 4
    assert all(_same(fresh[t], soft_targets(other, spec, texts, sources, 2.0)[t]) for t in plain)
    assert not _same(fresh["topic"], plain["topic"])
    with pytest.raises(DataError, match="--teacher-cache .*not a directory"):
        TeacherCache(str(entries[0]))


def test_a_teacher_reads_texts_with_its_own_tokenizer_and_length(tiny_model: Path, tmp_path: Path):
    """A teacher of another maximum length (as one of another base would be) is read its own way:
    its soft targets are its served probabilities, not those of the student's settings."""
    from models.training.train import TrainConfig, train

    short = tmp_path / "short"
    train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
        output=str(short), limit=32, epochs=1, batch_size=16, progress=False, checkpoint_every=0, max_length=8))
    text = "Regional lender's shares slide as deposits flee and regulators weigh a sale of the bank"
    student_spec = read_spec(tiny_model)
    assert read_spec(short).max_length == 8 != student_spec.max_length
    soft = soft_targets(parse_teachers([f"tweets={short}"]), student_spec, {"topic": ["x"], "sentiment": [text]},
                        {"topic": ["topic"], "sentiment": ["tweets"]}, temperature=1.0)
    served = InferenceEngine(short, device="cpu", int8=False).classify([text])[0].probs
    assert soft["sentiment"][0].tolist() == pytest.approx([served[k] for k in student_spec.sentiment_labels], abs=1e-4)


def test_a_run_with_two_teachers_records_them_and_trains(tiny_model: Path, tmp_path: Path):
    from models.training.train import TrainConfig, train

    out = tmp_path / "student"
    train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=[f"tweets={dataset('sent_train.csv')}", f"news={dataset('news_train.csv')}"],
        sentiment_valid=dataset("sent_valid.csv"), output=str(out), limit=64, epochs=1, batch_size=16,
        progress=False, checkpoint_every=0, init_from=str(tiny_model),
        teacher=[f"topic,tweets={tiny_model}", f"news={tiny_model}"], distill_alpha=0.7, distill_temperature=3.0))
    spec = read_spec(out)
    assert spec.provenance["teachers"] == [
        {"targets": ["topic", "tweets"], "model": str(tiny_model), "version": read_spec(tiny_model).version},
        {"targets": ["news"], "model": str(tiny_model), "version": read_spec(tiny_model).version}]
    assert spec.provenance["config"]["distill_alpha"] == 0.7
    losses = spec.metrics["history"][0]["train_loss"]
    assert all(losses[t] is not None and losses[t] > 0 for t in ("topic", "sentiment"))


def test_bad_teacher_settings_are_named(tiny_model: Path, tmp_path: Path):
    with pytest.raises(DataError, match="write TARGETS=MODEL"):
        TeacherSpec.parse(str(tiny_model))
    with pytest.raises(DataError, match="is not a model directory"):
        TeacherSpec.parse(f"tweets={tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="'tweets' has two teachers"):
        parse_teachers([f"tweets={tiny_model}", f"topic,tweets={tiny_model}"])
    with pytest.raises(DataError, match="--distill-alpha 1.5"):
        check_settings(1.5, 2.0)
    with pytest.raises(DataError, match="--distill-temperature 0"):
        check_settings(0.5, 0)
    spec = read_spec(tiny_model)
    with pytest.raises(DataError, match="no training rows are 'reddit'"):
        soft_targets(parse_teachers([f"reddit={tiny_model}"]), spec, {"topic": ["a"], "sentiment": ["b"]},
                     {"topic": ["topic"], "sentiment": ["tweets"]}, 2.0)


def test_the_train_command_names_a_bad_teacher_in_one_line(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "train", "-o", str(tmp_path / "m"), *train_args(),
                             "--teacher", f"tweets={tmp_path / 'missing'}", "--limit", "8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "is not a model directory" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()
