"""Serving bundles (models/serving/bundle.py): the ONNX graph, tokenizer and labels the lean CPU image
runs without PyTorch give the engine's predictions, and a broken bundle is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.serving.engine import InferenceEngine
from moodwire.errors import ModelError
from models.serving.bundle import BundleEngine, is_bundle, open_engine, write_bundle

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["Fed holds rates steady", "Regional bank shares slide after deposit outflows",
         "Acme Corp beats estimates and raises its dividend", "", "x " * 300]


@pytest.fixture(scope="module")
def bundle(tiny_model, tmp_path_factory) -> Path:
    return write_bundle(tiny_model, tmp_path_factory.mktemp("bundle") / "b")


@pytest.mark.parametrize("int8", [True, False])
def test_a_bundle_predicts_what_the_engine_predicts(bundle, tiny_model, tmp_path, int8):
    engine = InferenceEngine(tiny_model, device="cpu", int8=int8, cache_dir=tmp_path)
    served = open_engine(bundle, device="cpu", int8=int8)
    assert served.int8 is int8
    assert isinstance(served, BundleEngine) and is_bundle(bundle) and served.label == engine.label
    assert served.spec.topic_labels == list(engine.spec.topic_labels)
    for got, want in zip(served.classify(TEXTS), engine.classify(TEXTS), strict=True):
        assert (got.topic, got.sentiment) == (want.topic, want.sentiment)
        assert got.score == pytest.approx(want.score, abs=1e-4)
        assert got.topic_confidence == pytest.approx(want.topic_confidence, abs=1e-4)
    prepared = served.prepare(TEXTS[:2])  # the worker's two-step form
    assert [p.topic for p in served.run(prepared)] == [p.topic for p in served.classify(TEXTS[:2])]
    assert served.run(served.prepare([])) == []


def test_a_bundle_runs_where_torch_is_not_installed(bundle):
    """The lean image holds no torch: here it is hidden from the child process."""
    code = ("import sys; sys.modules['torch'] = None\n"  # as if absent: find_spec None, import fails
            "from models.serving.bundle import open_engine\n"
            f"e = open_engine({str(bundle)!r}, device='cpu')\n"
            "p = e.classify(['Regional bank shares slide after deposit outflows'])\n"
            "assert not [m for m, v in sys.modules.items() if m.startswith('torch') and v is not None]\n"
            "print(p[0].topic)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() in json.loads((bundle / "serving.json").read_text())["topic_labels"]


def test_a_broken_bundle_or_a_gpu_request_is_one_clear_line(bundle, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "serving.json").write_text("{}")
    with pytest.raises(ModelError, match=r"is not a Moodwire bundle: .*make one with moodwire bundle"):
        open_engine(broken, device="cpu")
    with pytest.raises(ModelError, match="MOODWIRE_DEVICE=cuda needs a model folder"):
        open_engine(bundle, device="cuda")
    (broken / "serving.json").write_text((bundle / "serving.json").read_text())
    (broken / "tokenizer").symlink_to(bundle / "tokenizer")
    with pytest.raises(ModelError, match=r"model-int8.onnx is missing: the bundle is incomplete"):
        open_engine(broken, device="cpu")
