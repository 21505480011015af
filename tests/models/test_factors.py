"""LoRA factors stored in int8 (models/serving/factors.py): the arithmetic, the file and what a model so
stored predicts, loads and continues from."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.serving.artefact import CONFIG_FILE, WEIGHTS_FILE, ModelSpec, load_model, read_spec
from moodwire.errors import ArtefactError
from models.serving.factors import dequantize_factors, quantize_factors
from models.serving.predict import predict_probs
from tests.models.helpers import save_full_copy

A = "encoder.layer.0.query.lora_A.default.weight"
B = "encoder.layer.0.query.lora_B.default.weight"
NORM = "encoder.layer.0.LayerNorm.weight"


def _factors(rank: int = 8) -> dict[str, torch.Tensor]:
    """Factors as a truncated SVD makes them: each rank component √σ on both sides, σ falling by orders."""
    g = torch.Generator().manual_seed(3)
    root = torch.logspace(0, -3, rank).sqrt()
    return {A: root[:, None] * torch.randn(rank, 24, generator=g),
            B: torch.randn(32, rank, generator=g) * root,
            NORM: torch.randn(24, generator=g)}


def test_each_rank_component_keeps_its_own_precision():
    state = _factors()
    stored = quantize_factors(state)
    assert stored[A].dtype == stored[B].dtype == torch.int8
    assert stored[A + ".scale"].shape == (8, 1) and stored[B + ".scale"].shape == (1, 8)
    assert stored[NORM] is state[NORM]  # everything but the factors is stored as it was
    back = dequantize_factors(stored, "w")
    for name, dim in ((A, 1), (B, 0)):
        error = (back[name] - state[name]).norm(dim=dim) / state[name].norm(dim=dim)
        assert error.max() < 0.01  # the smallest component (σ 1e-3) as precise as the largest
    delta, approx = state[B] @ state[A], back[B] @ back[A]
    assert (approx - delta).norm() / delta.norm() < 0.01


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop(A + ".scale"), "not stored as int8 with its scales"),
    (lambda s: s.update({A: s[A].float()}), "not stored as int8 with its scales"),
    (lambda s: s.update({A + ".scale": s[A + ".scale"].reshape(1, 8)}), r"expected \[8, 1\]"),
    (lambda s: s.update({"x.lora_A.default.weight.scale": torch.ones(2, 1)}), "has no factor beside it"),
])
def test_a_damaged_file_is_refused_by_name(damage, message):
    stored = quantize_factors(_factors())
    damage(stored)
    with pytest.raises(ArtefactError, match=message):
        dequantize_factors(stored, "m/weights.safetensors")


def test_the_description_says_how_factors_are_stored_and_refuses_what_cannot_be():
    spec = ModelSpec(base="b")
    assert spec.to_json()["format"] == 1 and "factor_storage" not in spec.to_json()
    int8 = replace(spec, factor_storage="int8")
    assert int8.to_json()["format"] == 2
    assert ModelSpec.from_json(int8.to_json(), "m").factor_storage == "int8"
    with pytest.raises(ArtefactError, match="unknown factor_storage 'int4'"):
        ModelSpec.from_json({**int8.to_json(), "factor_storage": "int4"}, "m")
    with pytest.raises(ArtefactError, match="for LoRA adapters, not a 'full' model"):
        ModelSpec.from_json({**int8.to_json(), "finetune": "full"}, "m")
    with pytest.raises(ArtefactError, match="unsupported model format 3"):
        ModelSpec.from_json({**spec.to_json(), "format": 3}, "m")


@pytest.mark.slow
def test_an_adapter_with_int8_factors_predicts_loads_and_continues_like_its_float_copy(tiny_model: Path, tmp_path: Path):
    """moodwire export --lora-rank --int8-factors: a file about half the size of fp16 whose model
    predicts what the float adapter does, to a few thousandths; it exports (merged) and a LoRA run
    continues from it with the read-back floats."""
    from models.serving.artefact import build_network, export_model
    from models.training.extract import lora_from_full
    from models.training.train import _warm_start

    _, tokenizer, spec = load_model(tiny_model)
    save_full_copy(tiny_model, tmp_path / "full")
    lora_from_full(tmp_path / "full", tmp_path / "fp16", 16, half=True)
    lora_from_full(tmp_path / "full", tmp_path / "int8", 16, half=True, int8_factors=True)

    stored = load_file(str(tmp_path / "int8" / WEIGHTS_FILE))
    assert stored["encoder.base_model.model.encoder.layer.0.attention.self.query.lora_A.default.weight"].dtype == torch.int8
    assert json.loads((tmp_path / "int8" / CONFIG_FILE).read_text())["format"] == 2
    assert read_spec(tmp_path / "int8").provenance["lora_from_full"]["int8_factors"] is True
    assert (tmp_path / "int8" / WEIGHTS_FILE).stat().st_size < 0.75 * (tmp_path / "fp16" / WEIGHTS_FILE).stat().st_size

    texts = ["Fed signals two more rate hikes as inflation stays hot", "Apple beats earnings estimates, shares jump 5%",
             "Regional lender's deposits flee after failed share sale"]
    fp16, _, _ = load_model(tmp_path / "fp16")
    int8, _, int8_spec = load_model(tmp_path / "int8")
    for a, b in zip(predict_probs(fp16, tokenizer, texts, spec.max_length),
                    predict_probs(int8, tokenizer, texts, spec.max_length)):
        assert torch.allclose(a, b, atol=5e-3)

    merged = export_model(tmp_path / "int8", tmp_path / "merged")
    assert json.loads((merged / CONFIG_FILE).read_text())["format"] == 1
    again, _, _ = load_model(merged)
    assert torch.allclose(predict_probs(int8, tokenizer, texts, spec.max_length)[1],
                          predict_probs(again, tokenizer, texts, spec.max_length)[1], atol=1e-5)

    float_spec = replace(int8_spec, factor_storage="float")  # a run continued from it stores floats
    lora_net, _ = build_network(float_spec)
    _warm_start(lora_net, float_spec, str(tmp_path / "int8"))
    read_back = dequantize_factors(stored, "w")
    for name, param in lora_net.named_parameters():
        if ".lora_A." in name:
            assert torch.equal(param.detach(), read_back[name])

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG_FILE).write_text((tmp_path / "int8" / CONFIG_FILE).read_text())
    save_file({k: v for k, v in stored.items() if not k.endswith(".scale")}, str(broken / WEIGHTS_FILE))
    with pytest.raises(ArtefactError, match="not stored as int8 with its scales"):
        load_model(broken)


def test_int8_factors_without_a_rank_cut_is_a_usage_error(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "export", "-o", str(tmp_path / "x"), "--int8-factors"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "--int8-factors stores a LoRA adapter's factors; it needs --lora-rank" in result.stderr
    assert not (tmp_path / "x").exists()
    named = subprocess.run([sys.executable, "-m", "moodwire_cli", "export", "-o", str(tmp_path / "x"), "--version", "2.0"],
                           capture_output=True, text=True)
    assert named.returncode == 2 and "--version names the version of a cut model" in named.stderr
    assert not (tmp_path / "x").exists()
