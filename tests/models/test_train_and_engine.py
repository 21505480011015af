"""Real fine-tuning on a small slice of the shared data, artefacts and the inference engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.serving.artefact import CONFIG_FILE, WEIGHTS_FILE, load_model, read_spec
from models.serving.engine import InferenceEngine
from moodwire.errors import ArtefactError
from models.serving.predict import predict_probs
from tests.conftest import dataset
from tests.models.helpers import save_full_copy

pytestmark = pytest.mark.slow

TEXTS = ["Fed signals two more rate hikes as inflation stays hot",
         "Apple beats earnings estimates, shares jump 5%",
         "",
         "Bank X shares plunge after regulator opens fraud probe " * 3,
         "Ölpreis fällt deutlich nach OPEC-Entscheidung 📉🛢️",
         "x" * 100_000]


def test_training_lowers_the_loss_and_writes_a_self_describing_model(tiny_model: Path):
    spec = read_spec(tiny_model)
    history = spec.metrics["history"]
    assert len(history) == 2
    for task in ("topic", "sentiment"):
        assert history[1]["train_loss"][task] < history[0]["train_loss"][task]
    assert len(spec.topic_labels) == 20 and spec.sentiment_labels == ["negative", "neutral", "positive"]
    assert spec.finetune == "lora"
    # Only the adapter, LayerNorms and heads are stored: far smaller than the 90 MB encoder.
    assert (tiny_model / WEIGHTS_FILE).stat().st_size < 5_000_000


def test_save_load_roundtrip_gives_identical_predictions(tiny_model: Path):
    a, tok_a, spec = load_model(tiny_model)
    b, tok_b, _ = load_model(tiny_model)
    pa = predict_probs(a, tok_a, TEXTS, spec.max_length)
    pb = predict_probs(b, tok_b, TEXTS, spec.max_length)
    assert torch.equal(pa[0], pb[0]) and torch.equal(pa[1], pb[1])


def test_training_is_seeded_and_reproducible(tiny_model: Path, tmp_path: Path):
    from models.training.train import TrainConfig, train

    again = tmp_path / "again"
    train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
        output=str(again), limit=96, epochs=2, batch_size=16, progress=False, checkpoint_every=0))
    assert read_spec(again).metrics["history"][-1]["train_loss"] == read_spec(tiny_model).metrics["history"][-1]["train_loss"]


def test_training_resumes_from_its_checkpoint(tmp_path: Path):
    from models.training.train import TrainConfig, train

    def cfg(epochs: int) -> TrainConfig:
        return TrainConfig(
            topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
            sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
            output=str(tmp_path / "m"), checkpoint_dir=str(tmp_path / "ckpt"), limit=48, epochs=epochs,
            batch_size=16, progress=False, patience=5)

    train(cfg(2))
    one_run = read_spec(tmp_path / "m").metrics["history"]
    # A longer run with the same settings but more epochs is a different run: refused.
    from moodwire.errors import ModelError
    with pytest.raises(ModelError, match="made with other settings"):
        train(cfg(3))
    # The same run resumed after it finished trains nothing more and gives the same history.
    train(cfg(2))
    assert read_spec(tmp_path / "m").metrics["history"] == one_run
    # Resumed once more with --keep last (which does not change the run): the last epoch's
    # weights are saved, and its figures with them.
    from dataclasses import replace
    train(replace(cfg(2), keep="last", output=str(tmp_path / "last")))
    last = read_spec(tmp_path / "last").metrics
    assert last["selection"] == "last epoch" and last["validation"] == one_run[-1]["valid"]


def test_engine_keeps_input_order_and_handles_odd_texts(tiny_model: Path):
    engine = InferenceEngine(tiny_model, device="cpu", int8=False, batch_size=2)
    preds = engine.classify(TEXTS)
    assert len(preds) == len(TEXTS)
    reversed_preds = engine.classify(TEXTS[::-1])
    assert [p.topic for p in reversed_preds] == [p.topic for p in preds][::-1]
    for p, q in zip(reversed_preds[::-1], preds):
        assert p.probs == pytest.approx(q.probs, abs=1e-5)
    for p in preds:
        assert set(p.probs) == {"negative", "neutral", "positive"}
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.score == pytest.approx(p.probs["positive"] - p.probs["negative"], abs=1e-6)
        assert 0.0 <= p.topic_confidence <= 1.0
    assert engine.classify([]) == []


def test_engine_results_do_not_depend_on_batching(tiny_model: Path):
    small = InferenceEngine(tiny_model, device="cpu", int8=False, batch_size=1, chunk_size=2)
    large = InferenceEngine(tiny_model, device="cpu", int8=False, batch_size=64)
    for p, q in zip(small.classify(TEXTS), large.classify(TEXTS)):
        assert p.topic == q.topic
        assert p.probs == pytest.approx(q.probs, abs=1e-4)


def test_int8_path_agrees_with_fp32(tiny_model: Path):
    fp32 = InferenceEngine(tiny_model, device="cpu", int8=False).classify(TEXTS)
    int8 = InferenceEngine(tiny_model, device="cpu", int8=True).classify(TEXTS)
    assert all(abs(a.score - b.score) < 0.2 for a, b in zip(fp32, int8))


def test_loading_a_broken_artefact_is_a_clear_error(tiny_model: Path, tmp_path: Path):
    with pytest.raises(ArtefactError, match="does not exist"):
        load_model(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(ArtefactError, match=f"{CONFIG_FILE} is missing"):
        load_model(broken)
    (broken / CONFIG_FILE).write_text((tiny_model / CONFIG_FILE).read_text())
    with pytest.raises(ArtefactError, match=f"{WEIGHTS_FILE} is missing"):
        load_model(broken)
    (broken / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ArtefactError, match="not valid JSON"):
        load_model(broken)


def test_evaluate_command_on_a_hand_made_file(tiny_model: Path, tmp_path: Path):
    data = tmp_path / "hand.csv"
    data.write_text("text,label\nShares crash on fraud probe,bearish\nStocks soar to record,BULLISH\n"
                    "Company holds annual meeting,Neutral\n")
    png = tmp_path / "cm.png"
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "evaluate", "--task", "sentiment", "--data",
                             str(data), "--model", str(tiny_model), "--json", "--png", str(png)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    engine = InferenceEngine(tiny_model, device="cpu", int8=False)
    predicted = [p.sentiment for p in engine.classify(["Shares crash on fraud probe", "Stocks soar to record",
                                                       "Company holds annual meeting"])]
    expected_correct = sum(p == t for p, t in zip(predicted, ["negative", "positive", "neutral"]))
    assert report["accuracy"] == pytest.approx(expected_correct / 3)
    assert sum(map(sum, report["confusion_matrix"])) == 3
    assert png.stat().st_size > 1000


def test_evaluate_command_reports_bad_label_cleanly(tiny_model: Path, tmp_path: Path):
    data = tmp_path / "bad.csv"
    data.write_text("text,label\nx,sideways\n")
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "evaluate", "--task", "sentiment", "--data",
                             str(data), "--model", str(tiny_model)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "error:" in result.stderr and "row 2: unknown sentiment label 'sideways'" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_is_self_contained_and_predicts_the_same(tiny_model: Path, tmp_path: Path):
    from models.serving.artefact import export_model

    out = export_model(tiny_model, tmp_path / "exported")
    assert read_spec(out).finetune == "merged" and read_spec(out).base == "./encoder"
    original = InferenceEngine(tiny_model, device="cpu", int8=False).classify(TEXTS)
    exported = InferenceEngine(out, device="cpu", int8=False).classify(TEXTS)
    for a, b in zip(original, exported):
        assert a.topic == b.topic and a.probs == pytest.approx(b.probs, abs=1e-5)
    (out / "encoder" / "config.json").unlink()
    with pytest.raises(ArtefactError):
        load_model(out)


def test_init_from_continues_from_a_saved_model_and_refuses_another_shape(tiny_model: Path, tmp_path: Path):
    from safetensors.torch import load_file

    from moodwire.errors import ModelError
    from models.training.train import TrainConfig, train

    def config(output: Path, **extra) -> TrainConfig:
        return TrainConfig(
            topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
            sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
            output=str(output), limit=96, epochs=1, batch_size=16, progress=False, checkpoint_every=0, **extra)

    cold = config(tmp_path / "cold")
    warm = config(tmp_path / "warm", init_from=str(tiny_model))
    train(cold)
    train(warm)
    cold_loss = read_spec(tmp_path / "cold").metrics["history"][0]["train_loss"]
    warm_loss = read_spec(tmp_path / "warm").metrics["history"][0]["train_loss"]
    # Starting from the trained model, the first epoch's loss starts where the trained one ended.
    for task in ("topic", "sentiment"):
        assert warm_loss[task] < cold_loss[task]
    assert set(load_file(str(tmp_path / "warm" / WEIGHTS_FILE))) == set(load_file(str(tiny_model / WEIGHTS_FILE)))

    from models.serving.artefact import LoraSettings
    with pytest.raises(ModelError, match=r"--init-from .*lora"):
        train(config(tmp_path / "other", init_from=str(tiny_model), lora=LoraSettings(r=4, alpha=8)))


def test_a_full_fine_tune_starts_from_a_lora_model_merged(tiny_model: Path):
    """--finetune full --init-from a LoRA model: every weight trainable, predictions at the start
    those of the LoRA model as served (its adapter merged)."""
    from dataclasses import replace

    from models.serving.artefact import build_network
    from models.training.train import _warm_start

    lora_model, tokenizer, spec = load_model(tiny_model)
    lora_model.temperatures = (1.0, 1.0)
    full_spec = replace(spec, finetune="full")
    full, _ = build_network(full_spec)
    _warm_start(full, full_spec, str(tiny_model))
    full.eval()
    assert all(p.requires_grad for p in full.parameters())
    texts = TEXTS[:2]
    expected = predict_probs(lora_model, tokenizer, texts, spec.max_length)
    got = predict_probs(full, tokenizer, texts, spec.max_length)
    for a, b in zip(expected, got):
        assert torch.allclose(a, b, atol=1e-5)


def test_a_full_fine_tune_cut_to_a_lora_adapter_keeps_what_the_rank_holds(tiny_model: Path, tmp_path: Path):
    """moodwire export --lora-rank: a full model whose weight changes have rank <= 16 (the tiny
    LoRA model merged) comes back exactly at rank 16, approximately at rank 2, and loads as a
    LoRA model; a LoRA model is refused."""
    from models.training.extract import lora_from_full

    lora_model, tokenizer, spec = load_model(tiny_model)
    save_full_copy(tiny_model, tmp_path / "full")

    texts = TEXTS[:2] + ["Regional lender's deposits flee after failed share sale"]
    expected = predict_probs(lora_model, tokenizer, texts, spec.max_length)
    report = lora_from_full(tmp_path / "full", tmp_path / "r16", 16)
    assert report["layers"] == 36 and report["kept_energy_min"] > 0.999
    r16, _, r16_spec = load_model(tmp_path / "r16")
    assert r16_spec.finetune == "lora" and r16_spec.lora.r == 16
    for a, b in zip(expected, predict_probs(r16, tokenizer, texts, spec.max_length)):
        assert torch.allclose(a, b, atol=1e-4)
    size = (tmp_path / "r16" / WEIGHTS_FILE).stat().st_size
    assert size < 0.1 * (tmp_path / "full" / WEIGHTS_FILE).stat().st_size

    assert lora_from_full(tmp_path / "full", tmp_path / "r2", 2)["kept_energy_min"] < 0.999
    r2, _, _ = load_model(tmp_path / "r2")
    assert not torch.allclose(expected[1], predict_probs(r2, tokenizer, texts, spec.max_length)[1], atol=1e-4)

    with pytest.raises(ArtefactError, match="only a full fine-tune"):
        lora_from_full(tiny_model, tmp_path / "again", 16)


def test_average_and_calibrate(tiny_model: Path, tmp_path: Path):
    """moodwire average: the mean of the weights as a full model (of one model with itself: that
    model); moodwire calibrate: temperatures fitted and stored; models of other tasks refused."""
    from models.training.data import load_labelled
    from moodwire.errors import ModelError
    from models.training.extract import average_models
    from models.serving.labels import LabelMap
    from models.training.validation import recalibrate

    average_models([tiny_model, tiny_model], tmp_path / "avg", version="t")
    avg, tokenizer, spec = load_model(tmp_path / "avg")
    assert spec.finetune == "full" and spec.calibration == {} and len(spec.provenance["average_of"]) == 2
    tiny, _, _ = load_model(tiny_model)
    tiny.temperatures = (1.0, 1.0)
    for a, b in zip(predict_probs(tiny, tokenizer, TEXTS[:2], spec.max_length),
                    predict_probs(avg, tokenizer, TEXTS[:2], spec.max_length)):
        assert torch.allclose(a, b, atol=1e-5)

    topic = load_labelled(dataset("topic_valid.csv"), LabelMap("topic", tuple(spec.topic_labels))).subset(64)
    sentiment = {"tweets": load_labelled(dataset("sent_valid.csv"),
                                         LabelMap("sentiment", tuple(spec.sentiment_labels))).subset(64)}
    result = recalibrate(tmp_path / "avg", topic, sentiment)
    stored = read_spec(tmp_path / "avg")
    assert stored.calibration["sentiment_temperature"] == result["sentiment_temperature"] > 0
    assert stored.metrics["validation"]["topic"]["n"] == 64

    other = tmp_path / "other"
    import shutil
    shutil.copytree(tiny_model, other)
    config = json.loads((other / CONFIG_FILE).read_text())
    (other / CONFIG_FILE).write_text(json.dumps({**config, "max_length": 32}))
    with pytest.raises(ModelError, match="max_length differs"):
        average_models([tiny_model, other], tmp_path / "bad")


def test_lora_training_continues_an_exported_adapter_with_its_changed_base_weights(tiny_model: Path, tmp_path: Path):
    """An adapter cut from a full fine-tune (``moodwire export --lora-rank``) also stores the base
    weights that changed; a LoRA run continued from it (its dropout aside, the same shape) starts
    from all of them, trains them on and saves them again."""
    from safetensors.torch import load_file

    from models.serving.artefact import LoraSettings
    from models.training.extract import lora_from_full
    from models.training.train import TrainConfig, train

    save_full_copy(tiny_model, tmp_path / "full")
    lora_from_full(tmp_path / "full", tmp_path / "cut", 8)
    cut = load_file(str(tmp_path / "cut" / WEIGHTS_FILE))
    assert any("position_embeddings" in name for name in cut)

    out = tmp_path / "continued"
    train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
        output=str(out), limit=48, epochs=1, batch_size=16, progress=False, checkpoint_every=0,
        init_from=str(tmp_path / "cut"), lora=LoraSettings(r=8, alpha=8)))
    continued = load_file(str(out / WEIGHTS_FILE))
    assert set(continued) == set(cut)
    changed = [n for n in cut if "position_embeddings" in n or "dense.base_layer.bias" in n]
    assert changed and any(not torch.equal(cut[n].float(), continued[n].float()) for n in changed)
