"""Validation during training: per-source figures, the selection score and calibration.

The selection score (which epoch is kept, when to stop early) is the mean of:
topic accuracy and macro-F1; for every named sentiment validation source (``tweets``,
``news`` …) its accuracy and macro-F1 over all its rows; and, for a source split by a
``source`` column (news: sentfin, finentity, wsj), the accuracy of its weakest part.
A model that learns tweets and forgets newswire sentences therefore scores lower even when
the pooled figure rises.
"""

from __future__ import annotations

import numpy as np
import torch

from models.training.calibration import fit_temperature, reliability
from models.training.data import LabelledSet
from models.training.metrics import classification_report
from models.serving.predict import predict_entity_logits, predict_logits


def _figures(labels, predicted, names) -> dict:
    report = classification_report(labels, predicted, names)
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "n": report["n"]}


def validation_logits(model, tokenizer, spec, topic_valid: LabelledSet,
                      sentiment_valid: dict[str, LabelledSet]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Topic logits of the topic set and sentiment logits of each sentiment source."""
    topic_logits, _ = predict_logits(model, tokenizer, topic_valid.texts, spec.max_length)
    sentiment = {name: predict_logits(model, tokenizer, data.texts, spec.max_length)[1]
                 for name, data in sentiment_valid.items()}
    return topic_logits, sentiment


def validation_metrics(spec, topic_valid: LabelledSet, sentiment_valid: dict[str, LabelledSet],
                       topic_logits: torch.Tensor, sentiment_logits: dict[str, torch.Tensor]) -> dict:
    """``{"topic": …, "sentiment": <all sentiment rows>, "sentiment_sources": {name: …}}``.

    ``sentiment_sources`` holds every source and, for split files, their parent (``news``).
    """
    out = {"topic": _figures(topic_valid.labels, topic_logits.argmax(-1).tolist(), spec.topic_labels)}
    per_source, parents = {}, {}
    for name, data in sentiment_valid.items():
        predicted = sentiment_logits[name].argmax(-1).tolist()
        per_source[name] = _figures(data.labels, predicted, spec.sentiment_labels)
        parent = name.split("/")[0]
        labels, preds = parents.setdefault(parent, ([], []))
        labels.extend(data.labels)
        preds.extend(predicted)
    for parent, (labels, preds) in parents.items():
        if parent not in per_source:
            per_source[parent] = _figures(labels, preds, spec.sentiment_labels)
    all_labels = [y for labels, _ in parents.values() for y in labels]
    all_preds = [p for _, preds in parents.values() for p in preds]
    out["sentiment"] = _figures(all_labels, all_preds, spec.sentiment_labels)
    out["sentiment_sources"] = dict(sorted(per_source.items()))
    return out


def entity_figures(labels, predicted, names, data) -> dict:
    """Entity-head figures: all rows, per source, the disagreement and one-entity subsets."""
    out = _figures(labels, predicted, names)
    parts = {"disagree": [i for i, d in enumerate(data.disagree) if d],
             "single": [i for i, s in enumerate(data.single) if s]}
    parts.update({f"source/{g}": [i for i, x in enumerate(data.groups) if x == g] for g in sorted(set(data.groups))})
    for name, rows in parts.items():
        if rows:
            out[name] = _figures([labels[i] for i in rows], [predicted[i] for i in rows], names)
    return out


def entity_metrics(model, tokenizer, spec, data) -> dict:
    """The entity head's figures on an entity validation set (models/training/entities.py)."""
    logits = predict_entity_logits(model, tokenizer, data.texts, data.entities, spec.max_length)
    return entity_figures(data.labels, logits.argmax(-1).tolist(), spec.sentiment_labels, data)


def selection_score(metrics: dict) -> float:
    """One number to pick the best epoch by (see the module notes)."""
    parts = [metrics["topic"]["accuracy"], metrics["topic"]["macro_f1"]]
    sources = metrics.get("sentiment_sources")
    if not sources:  # a description written before per-source validation
        return float(np.mean(parts + [metrics["sentiment"]["accuracy"], metrics["sentiment"]["macro_f1"]]))
    for name, figures in sources.items():
        if "/" in name:
            continue
        parts += [figures["accuracy"], figures["macro_f1"]]
        children = [f["accuracy"] for child, f in sources.items() if child.startswith(name + "/")]
        if children:
            parts.append(min(children))
    if "entity" in metrics:  # the entity head: all rows and the texts whose entities disagree
        entity = metrics["entity"]
        parts += [entity["accuracy"], entity["macro_f1"], entity.get("disagree", entity)["accuracy"]]
    return float(np.mean(parts))


def calibrate(topic_valid: LabelledSet, sentiment_valid: dict[str, LabelledSet],
              topic_logits: torch.Tensor, sentiment_logits: dict[str, torch.Tensor]) -> dict:
    """Fit one temperature per head on the validation rows; report ECE before and after.

    Every sentiment source weighs by its rows. The figures after are measured on the rows
    the temperature was fitted on (the data has no third split): they show the fit, not
    how it generalises.
    """
    names = list(sentiment_valid)
    s_logits = torch.cat([sentiment_logits[n] for n in names])
    s_labels = [y for n in names for y in sentiment_valid[n].labels]
    result = {"fitted_on": {"topic": topic_valid.__len__(), "sentiment": {n: len(sentiment_valid[n]) for n in names}}}
    for task, logits, labels in (("topic", topic_logits, topic_valid.labels), ("sentiment", s_logits, s_labels)):
        temperature = fit_temperature(logits, labels)
        before = reliability(logits.softmax(-1).numpy(), labels)["ece"]
        after = reliability((logits / temperature).softmax(-1).numpy(), labels)["ece"]
        result.update({f"{task}_temperature": round(temperature, 4),
                       f"{task}_ece_before": round(before, 4), f"{task}_ece_after": round(after, 4)})
    per_source = {}
    t = result["sentiment_temperature"]
    for name in names:
        labels = sentiment_valid[name].labels
        per_source[name] = {
            "ece_before": round(reliability(sentiment_logits[name].softmax(-1).numpy(), labels)["ece"], 4),
            "ece_after": round(reliability((sentiment_logits[name] / t).softmax(-1).numpy(), labels)["ece"], 4)}
    result["sentiment_sources"] = per_source
    return result


def calibrate_entity(entity_valid, logits: torch.Tensor) -> dict:
    """The entity head's temperature, fitted on the entity validation rows, with ECE before and after."""
    temperature = fit_temperature(logits, entity_valid.labels)
    return {"entity_temperature": round(temperature, 4),
            "entity_ece_before": round(reliability(logits.softmax(-1).numpy(), entity_valid.labels)["ece"], 4),
            "entity_ece_after": round(reliability((logits / temperature).softmax(-1).numpy(),
                                                  entity_valid.labels)["ece"], 4)}


def recalibrate(model_dir, topic_valid: LabelledSet, sentiment_valid: dict[str, LabelledSet],
                entity_valid=None) -> dict:
    """Fit the temperatures of the model in ``model_dir`` again on these validation rows (the
    entity head's on ``entity_valid``, models/training/entities.py) and store them in its
    description (after averaging or cutting a model, for instance)."""
    from models.serving.artefact import load_model, write_spec

    model, tokenizer, spec = load_model(model_dir)
    model.temperatures = (1.0, 1.0, 1.0)
    with torch.inference_mode():
        topic_logits, sentiment_logits = validation_logits(model, tokenizer, spec, topic_valid, sentiment_valid)
    result = calibrate(topic_valid, sentiment_valid, topic_logits, sentiment_logits)
    validation = validation_metrics(spec, topic_valid, sentiment_valid, topic_logits, sentiment_logits)
    if entity_valid is not None and spec.entity:
        logits = predict_entity_logits(model, tokenizer, entity_valid.texts, entity_valid.entities, spec.max_length)
        result.update(calibrate_entity(entity_valid, logits))
        validation["entity"] = entity_figures(entity_valid.labels, logits.argmax(-1).tolist(), spec.sentiment_labels,
                                              entity_valid)
    spec.calibration = result
    spec.metrics = {**spec.metrics, "validation": validation}
    write_spec(spec, model_dir)
    return result
