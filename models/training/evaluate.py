"""``evaluate(model_dir, task, data) -> report``: figures of a saved model on a labelled file.

The report holds accuracy, macro-F1, per-class figures and the confusion matrix; the same
figures per value of the file's ``source`` column when it has one; the calibration of the
task's probabilities (expected calibration error and reliability bins, models/training/calibration.py);
and, for sentiment files with a ``score`` column, the correlation of p₊ − p₋ with it.
``read_as`` names a tagged training source (models/training/sources.py): the file's texts are read with
its tag, as that source was in training and validation; by default they are read untagged, as
every served headline is.
"""

from __future__ import annotations

from pathlib import Path

from models.serving.artefact import load_model, read_spec
from models.training.calibration import reliability
from models.serving.text import tag_texts
from models.training.data import load_labelled
from models.serving.labels import LabelMap
from models.training.metrics import classification_report, confusion_png
from models.serving.predict import predict_probs


def evaluate(model_dir: str | Path, task: str, data: str | Path, png: str | Path | None = None,
             quantized: bool = False, runtime: str = "onnx", cache_dir: str | Path | None = None,
             read_as: str | None = None) -> dict:
    spec = read_spec(model_dir)
    names = spec.topic_labels if task == "topic" else spec.sentiment_labels
    tag = spec.tag_of(read_as)  # an unknown tag is refused before the file is read
    labelled = load_labelled(data, LabelMap(task, tuple(names)))
    texts = labelled.texts if tag is None else tag_texts(tag, labelled.texts)
    topic, sentiment = _probabilities(model_dir, texts, quantized, runtime, cache_dir)
    probs = topic if task == "topic" else sentiment
    predicted = probs.argmax(-1).tolist()
    model_scores = None
    if labelled.scores is not None and task == "sentiment":
        neg, pos = names.index("negative"), names.index("positive")
        model_scores = (sentiment[:, pos] - sentiment[:, neg]).tolist()
    report = classification_report(labelled.labels, predicted, names, labelled.scores, model_scores)
    report.update(task=task, data=str(data), model=spec.label, int8=quantized, runtime=runtime if quantized else "torch",
                  read_as=read_as)
    report["calibration"] = reliability(probs.numpy(), labelled.labels)
    if labelled.groups is not None:
        report["per_source"] = {}
        for group in sorted(set(labelled.groups)):
            rows = [i for i, g in enumerate(labelled.groups) if g == group]
            part = classification_report([labelled.labels[i] for i in rows], [predicted[i] for i in rows], names)
            report["per_source"][group] = {
                "n": part["n"], "accuracy": part["accuracy"], "macro_f1": part["macro_f1"],
                "ece": reliability(probs[rows].numpy(), [labelled.labels[i] for i in rows])["ece"]}
    if png:
        confusion_png(report, str(png), f"{spec.label} — {task} — {Path(data).name}")
        report["confusion_png"] = str(png)
    return report


def _probabilities(model_dir, texts, quantized: bool, runtime: str, cache_dir):
    """fp32: the PyTorch network as trained. ``quantized``: the int8 CPU serving path itself
    (``models.serving.engine.InferenceEngine`` with ``runtime`` and its ``cache_dir``)."""
    if not quantized:
        model, tokenizer, spec = load_model(model_dir)
        return predict_probs(model, tokenizer, texts, spec.max_length)
    from models.serving.engine import InferenceEngine

    engine = InferenceEngine(model_dir, device="cpu", int8=True, runtime=runtime, cache_dir=cache_dir)
    try:
        return engine.probabilities(texts)
    finally:
        engine.close()


def class_lines(report: dict) -> list[str]:
    """The per-class table and the confusion matrix of a report, as text lines."""
    width = max(len(n) for n in report["labels"])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}")
    lines.append("confusion matrix (rows = true, columns = predicted):")
    lines.extend("  " + " ".join(f"{v:5d}" for v in row) for row in report["confusion_matrix"])
    return lines


def format_report(report: dict) -> str:
    read_as = f"  read as {report['read_as']}" if report.get("read_as") else ""
    lines = [f"model {report['model']}  task {report['task']}  data {report['data']}{read_as}  n={report['n']}",
             f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}"]
    lines.append(f"expected calibration error {report['calibration']['ece']:.4f} "
                 f"({report['calibration']['n_bins']} bins of the predicted class's probability)")
    if report.get("per_source"):
        lines.append(f"{'source':<12}  {'n':>5}  accuracy  macro-F1     ECE")
        for name, row in report["per_source"].items():
            lines.append(f"{name:<12}  {row['n']:5d}  {row['accuracy']:8.4f}  {row['macro_f1']:8.4f}  {row['ece']:6.4f}")
    if "score_correlation" in report:
        c = report["score_correlation"]
        lines.append(f"score correlation: pearson {c['pearson']:.4f}, spearman {c['spearman']:.4f}")
    lines += class_lines(report)
    if "confusion_png" in report:
        lines.append(f"confusion matrix and reliability diagram: {report['confusion_png']}")
    return "\n".join(lines)
