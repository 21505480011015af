"""``moodwire evaluate --task entity``: the entity head on an entity-level file, beside the
headline-level baseline of the same run.

The file has ``text,entity,label`` (and optionally ``start,end,source``; models/training/entities.py).
Each row is read as the pair "text [SEP] entity" by the entity head; the baseline gives every
entity its text's own sentiment (the sentiment head on the text), as watchlists were scored
before targeted sentiment. Both are reported on all rows, per ``source``, on the rows of texts
whose entities disagree, and on texts that name one entity.
"""

from __future__ import annotations

from pathlib import Path

from models.serving.artefact import read_spec
from models.serving.labels import LabelMap
from models.training.entities import load_entities
from models.training.evaluate import class_lines
from models.training.metrics import classification_report
from moodwire.errors import ModelError


def evaluate_entities(model_dir: str | Path, data: str | Path, quantized: bool = False, runtime: str = "onnx",
                      cache_dir: str | Path | None = None) -> dict:
    spec = read_spec(model_dir)
    if not spec.entity:
        raise ModelError(f"model {spec.label} has no entity head, so it cannot read the sentiment toward an entity; "
                         "train one with moodwire train --entity-train FILE --entity-valid FILE")
    names = list(spec.sentiment_labels)
    rows = load_entities(data, LabelMap("sentiment", tuple(names)))
    targeted, headline = _probabilities(model_dir, rows, quantized, runtime, cache_dir)
    predicted = targeted.argmax(-1).tolist()
    baseline = headline.argmax(-1).tolist()
    report = classification_report(rows.labels, predicted, names)
    report.update(task="entity", data=str(data), model=spec.label, int8=quantized,
                  runtime=runtime if quantized else "torch")
    parts = {"all": list(range(len(rows)))}
    parts.update({f"source {g}": [i for i, x in enumerate(rows.groups) if x == g] for g in sorted(set(rows.groups))})
    parts["entities disagree"] = [i for i, d in enumerate(rows.disagree) if d]
    parts["one entity"] = [i for i, s in enumerate(rows.single) if s]
    report["parts"] = {}
    for name, index in parts.items():
        if not index:
            continue
        truth = [rows.labels[i] for i in index]
        ours = classification_report(truth, [predicted[i] for i in index], names)
        theirs = classification_report(truth, [baseline[i] for i in index], names)
        report["parts"][name] = {"n": len(index), "accuracy": ours["accuracy"], "macro_f1": ours["macro_f1"],
                                 "baseline_accuracy": theirs["accuracy"], "baseline_macro_f1": theirs["macro_f1"]}
    report["baseline"] = {"accuracy": report["parts"]["all"]["baseline_accuracy"],
                          "macro_f1": report["parts"]["all"]["baseline_macro_f1"],
                          "what": "every entity given its text's sentiment (the sentiment head)"}
    return report


def _probabilities(model_dir, rows, quantized: bool, runtime: str, cache_dir):
    """(entity-head probabilities per row, sentiment-head probabilities of each row's text)."""
    texts = list(dict.fromkeys(rows.texts))
    at = {t: i for i, t in enumerate(texts)}
    index = [at[t] for t in rows.texts]
    if not quantized:
        from models.serving.artefact import load_model
        from models.serving.predict import predict_entity_logits, predict_probs

        model, tokenizer, spec = load_model(model_dir)
        targeted = predict_entity_logits(model, tokenizer, rows.texts, rows.entities, spec.max_length).softmax(-1)
        _, sentiment = predict_probs(model, tokenizer, texts, spec.max_length)
        return targeted.numpy(), sentiment.numpy()[index]
    from models.serving.engine import InferenceEngine

    engine = InferenceEngine(model_dir, device="cpu", int8=True, runtime=runtime, cache_dir=cache_dir)
    try:
        _, sentiment = engine.probabilities(texts)
        return engine.read_targets(rows.texts, rows.entities), sentiment.numpy()[index]
    finally:
        engine.close()


def format_entity_report(report: dict) -> str:
    lines = [f"model {report['model']}  task entity  data {report['data']}  n={report['n']}",
             f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   "
             f"(headline-level baseline: accuracy {report['baseline']['accuracy']:.4f}, "
             f"macro-F1 {report['baseline']['macro_f1']:.4f})",
             f"{'rows':<22} {'n':>5}  {'accuracy':>8}  {'macro-F1':>8}  {'baseline acc':>12}  {'baseline F1':>11}"]
    for name, row in report["parts"].items():
        lines.append(f"{name:<22} {row['n']:5d}  {row['accuracy']:8.4f}  {row['macro_f1']:8.4f}  "
                     f"{row['baseline_accuracy']:12.4f}  {row['baseline_macro_f1']:11.4f}")
    lines.append("baseline: every entity given its text's sentiment (the headline-level reading)")
    lines += class_lines(report)
    return "\n".join(lines)
