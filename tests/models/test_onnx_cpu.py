"""The ONNX Runtime CPU path: fused on the installed torch and onnxruntime, equal to PyTorch in
fp32, cached by exact weights, and clear about what a user got wrong."""

from __future__ import annotations

import os
import warnings

import onnx
import pytest
import torch

from models.serving.artefact import load_model
from models.serving.engine import InferenceEngine
from moodwire.errors import ModelError
from models.serving.onnx_cpu import build

TEXTS = ["Fed holds rates steady", "Regional bank shares slide after deposit outflows",
         "Acme Corp beats estimates and raises its dividend", "", "x " * 300]


def test_the_installed_exporter_and_optimizer_fuse_every_block(tiny_model, tmp_path):
    """Fails when a torch or onnxruntime upgrade changes the exported graph so that
    ONNX Runtime's BERT fusions no longer recognise it (the speed of the CPU path)."""
    model, _, _ = load_model(tiny_model)
    layers = model.encoder.config.num_hidden_layers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fusions = build(model, int8=False, out=tmp_path / "fp32.onnx")
    assert fusions.get("Attention") == layers
    assert fusions.get("SkipLayerNormalization") == 2 * layers
    assert fusions.get("BiasGelu") == layers
    assert fusions.get("EmbedLayerNormalization") == 1
    assert not [w for w in caught if "onnx" in str(w.filename) or "TorchScript" in str(w.message)]


@pytest.mark.parametrize("kept", [(), (0,)])
def test_int8_build_quantises_the_encoder_but_not_the_heads_or_the_kept_blocks(tiny_model, tmp_path, monkeypatch,
                                                                               kept):
    import models.serving.onnx_cpu

    monkeypatch.setattr(models.serving.onnx_cpu, "FP32_BLOCKS", kept)
    model, _, _ = load_model(tiny_model)
    build(model, int8=True, out=tmp_path / "int8.onnx")
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    ops = [n.op_type for n in graph.node]
    layers = model.encoder.config.num_hidden_layers
    assert ops.count("QAttention") == layers - len(kept)
    assert ops.count("Attention") == len(kept)
    plain = {n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")}
    assert not [n.name for n in graph.node if "_head/" in n.name and n.op_type == "MatMulInteger"]
    assert len([name for name in plain if "_head/" in name]) == 2
    assert "EmbedLayerNormalization" in ops  # the embeddings stay fp32
    for block in kept:
        assert any(name.endswith(f"/layer.{block}/intermediate/dense/MatMul") for name in plain)


def test_fp32_onnx_path_gives_pytorchs_probabilities(tiny_model):
    onnx_engine = InferenceEngine(tiny_model, device="cpu", int8=False, runtime="onnx")
    torch_engine = InferenceEngine(tiny_model, device="cpu", int8=False, runtime="torch")
    for a, b in zip(onnx_engine.probabilities(TEXTS), torch_engine.probabilities(TEXTS)):
        assert torch.allclose(a, b, atol=1e-4)
    assert onnx_engine.model is None and torch_engine.model is not None


def test_built_models_are_cached_by_weights_and_precision(tiny_model, tmp_path):
    cache = tmp_path / "cache"
    first = InferenceEngine(tiny_model, device="cpu", int8=True, cache_dir=cache).classify(TEXTS)
    built = sorted(cache.iterdir())
    assert [p.name.endswith("-int8.onnx") for p in built] == [True]
    stamp = built[0].stat().st_mtime_ns
    again = InferenceEngine(tiny_model, device="cpu", int8=True, cache_dir=cache).classify(TEXTS)
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert [(p.topic, p.sentiment) for p in again] == [(p.topic, p.sentiment) for p in first]
    InferenceEngine(tiny_model, device="cpu", int8=False, cache_dir=cache)
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 2 and {n.rsplit("-", 1)[1] for n in names} == {"int8.onnx", "fp32.onnx"}
    assert not [n for n in names if n.endswith(".partial")]


def test_unknown_runtime_is_refused_with_the_setting_to_fix(tiny_model):
    with pytest.raises(ModelError, match="MOODWIRE_CPU_RUNTIME"):
        InferenceEngine(tiny_model, device="cpu", runtime="tensorrt")


def test_an_unusable_cache_folder_is_refused_with_the_setting_to_fix(tiny_model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelError, match="MOODWIRE_ONNX_CACHE"):
        InferenceEngine(tiny_model, device="cpu", cache_dir=blocker / "onnx")
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    if os.access(read_only, os.W_OK):  # root writes anywhere: the check above stands alone
        return
    with pytest.raises(ModelError, match="MOODWIRE_ONNX_CACHE"):
        InferenceEngine(tiny_model, device="cpu", cache_dir=read_only)


def test_cpu_runtime_setting_is_validated():
    from moodwire.errors import SettingsError
    from moodwire.settings import load_settings

    assert load_settings(environ={"MOODWIRE_CPU_RUNTIME": "torch"}).engine_options["runtime"] == "torch"
    with pytest.raises(SettingsError, match="MOODWIRE_CPU_RUNTIME"):
        load_settings(environ={"MOODWIRE_CPU_RUNTIME": "tensorrt"})


def test_evaluate_int8_measures_the_serving_engine(tiny_model, tmp_path):
    from models.training.evaluate import evaluate

    texts, gold = ["Shares crash on fraud probe", "Stocks soar to record", "Company holds annual meeting",
                   "Lender's deposits flee as shares sink"], ["negative", "positive", "neutral", "negative"]
    data = tmp_path / "hand.csv"
    data.write_text("text,label\n" + "".join(f"{t},{g}\n" for t, g in zip(texts, gold)))
    report = evaluate(tiny_model, "sentiment", data, quantized=True, cache_dir=tmp_path / "cache")
    served = InferenceEngine(tiny_model, device="cpu", int8=True, cache_dir=tmp_path / "cache").classify(texts)
    assert report["runtime"] == "onnx" and report["int8"] is True
    assert report["accuracy"] == pytest.approx(sum(p.sentiment == g for p, g in zip(served, gold)) / len(gold))
