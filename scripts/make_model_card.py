"""Evaluate a trained model on the validation sets (fp32 and int8) and write its card.

    python scripts/make_model_card.py MODEL_DIR --command "the exact training command" [--note TEXT ...]
    python scripts/make_model_card.py MODEL_DIR --evaluation-only

Writes MODEL_DIR/README.md and MODEL_DIR/evaluation.json with every figure measured here:
topic (tfnt), sentiment on tweets (tfns) and on news (news/news_valid.csv, per source), each in
fp32 and on the int8 CPU path, the sentiment head's calibration on news before and after
the model's temperature, and for a model with the entity head the entity figures
(entities/entity_valid.csv, beside the headline-level baseline). ``--evaluation-only`` writes
evaluation.json alone (a card edited by hand is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.serving.artefact import WEIGHTS_FILE, load_model, read_spec  # noqa: E402
from models.training.calibration import reliability  # noqa: E402
from models.training.data import load_labelled  # noqa: E402
from models.training.evaluate import evaluate  # noqa: E402
from models.training.evaluate_entity import evaluate_entities  # noqa: E402
from models.serving.labels import LabelMap  # noqa: E402
from models.serving.predict import predict_probs  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {"topic": ("topic", DATA / "tfnt" / "topic_valid.csv"),
        "tweets": ("sentiment", DATA / "tfns" / "sent_valid.csv"),
        "news": ("sentiment", DATA / "news" / "news_valid.csv")}
ENTITIES = DATA / "entities" / "entity_valid.csv"
TARGETS = {"topic": (0.905, 0.89), "tweets": (0.885, 0.85), "news": (0.86, 0.85)}
SOURCE_TARGET = 0.82  # news accuracy per source
ECE_TARGET = 0.05


def untempered_ece(model_dir: Path, data: Path) -> float:
    """ECE of the sentiment head on ``data`` with the temperature set to 1 (before calibration)."""
    model, tokenizer, spec = load_model(model_dir)
    model.temperatures = (1.0, 1.0, 1.0)
    labelled = load_labelled(data, LabelMap("sentiment", tuple(spec.sentiment_labels)))
    _, probs = predict_probs(model, tokenizer, labelled.texts, spec.max_length)
    return reliability(probs.numpy(), labelled.labels)["ece"]


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--command", help="the exact command that trained the model")
    ap.add_argument("--evaluation-only", action="store_true", help="write evaluation.json only")
    ap.add_argument("--note", action="append", default=[], help="a line for the card's notes section")
    args = ap.parse_args()
    if not args.evaluation_only and not args.command:
        ap.error("--command is required unless --evaluation-only")
    model = Path(args.model)
    spec = read_spec(model)
    results = {}
    for name, (task, data) in SETS.items():
        read_as = name if name in spec.source_tags else None  # a tagged source is read as it was trained
        for int8 in (False, True):
            start = time.perf_counter()
            report = evaluate(model, task, data, quantized=int8, read_as=read_as)
            report["seconds"] = round(time.perf_counter() - start, 1)
            results[f"{name}{'_int8' if int8 else ''}"] = report
        if read_as:
            results[f"{name}_untagged"] = evaluate(model, task, data)
    results["topic"]["task"] = "topic"
    results["sentiment"] = results["tweets"]  # the tweets' split, as earlier cards named it
    results["news_ece_untempered"] = untempered_ece(model, SETS["news"][1])
    if spec.entity:
        for int8 in (False, True):
            results[f"entity{'_int8' if int8 else ''}"] = evaluate_entities(model, ENTITIES, quantized=int8)
    (model / "evaluation.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.evaluation_only:
        print(json.dumps({k: {m: v.get(m) for m in ("n", "accuracy", "macro_f1")} for k, v in results.items()
                          if isinstance(v, dict)}, indent=2))
        return

    cal = spec.calibration
    lines = [f"# {spec.label}", "",
             "Topic (20 classes) and sentiment (negative / neutral / positive) of financial news headlines, "
             "in one forward pass: one encoder, two linear heads over mean-pooled token states; the score "
             "windows average is p₊ − p₋.", "",
             f"- Base encoder: `{spec.base}` (all-MiniLM-L6-v2, 22.7 M parameters), loaded from its PyPI package at run time.",
             f"- Fine-tuning: {spec.finetune}" + (f", LoRA r={spec.lora.r}, alpha={spec.lora.alpha}, dropout={spec.lora.dropout} "
                                                  f"on {', '.join(spec.lora.target_modules)}; LayerNorms and heads trained"
                                                  if spec.finetune == "lora" else ""),
             f"- Stored here: adapter + LayerNorms + heads, {(model / WEIGHTS_FILE).stat().st_size / 1e6:.2f} MB.",
             f"- Maximum length {spec.max_length} tokens; links are removed and HTML entities unescaped before tokenising.",
             "- Training data: topic from zeroshot Twitter Financial News topic (tfnt, MIT); sentiment from its "
             "sentiment set (tfns, MIT) and news headlines and newswire sentences (`news/news_train.csv`: SEntFiN, "
             "FinEntity, WSJ economy headlines, gold-market headlines), drawn by source: "
             + ", ".join(f"{n} {r} rows ({spec.provenance.get('sentiment_sources', {}).get('per_epoch', {}).get(n, '?')} an epoch)"
                         for n, r in spec.provenance.get("sentiment_sources", {}).get("train", {}).items()) + ".",
             f"- Calibration: logits divided by a temperature fitted on the validation rows "
             f"(sentiment {cal.get('sentiment_temperature', 1.0)}, topic {cal.get('topic_temperature', 1.0)}).", "",
             "## Measured on the validation sets", "",
             "Measured with `moodwire evaluate` on this directory (fp32) and with `--int8` (the CPU serving path), "
             f"on {platform.machine()} CPU. The validation sets chose the epoch and the temperatures, so these figures "
             "carry that selection.", "",
             "| set | path | n | accuracy | macro-F1 | ECE | target (acc / macro-F1) | met |",
             "|---|---|---|---|---|---|---|---|"]
    for name in SETS:
        for suffix, path in (("", "fp32"), ("_int8", "int8")):
            r = results[name + suffix]
            acc_t, f1_t = TARGETS[name]
            ok = r["accuracy"] >= acc_t and r["macro_f1"] >= f1_t
            lines.append(f"| {name} | {path} | {r['n']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                         f"{r['calibration']['ece']:.4f} | {acc_t:.3f} / {f1_t:.2f} | {_met(ok)} |")
    tagged = [n for n in SETS if f"{n}_untagged" in results]
    if tagged:
        lines += ["", "Read with its source tag (`moodwire evaluate --read-as`): "
                  + ", ".join(f"{n} (`{spec.source_tags[n]}`)" for n in tagged) + ". The same sets read untagged, "
                  "as the pipeline reads every headline (fp32): "
                  + "; ".join(f"{n} accuracy {results[n + '_untagged']['accuracy']:.4f}, macro-F1 "
                              f"{results[n + '_untagged']['macro_f1']:.4f}" for n in tagged) + "."]
    lines += ["", "News per source (fp32; int8 in brackets):", "",
              f"| source | n | accuracy | macro-F1 | ECE | target acc {SOURCE_TARGET} |", "|---|---|---|---|---|---|"]
    for source, r in results["news"]["per_source"].items():
        q = results["news_int8"]["per_source"][source]
        lines.append(f"| {source} | {r['n']} | {r['accuracy']:.4f} ({q['accuracy']:.4f}) | {r['macro_f1']:.4f} "
                     f"({q['macro_f1']:.4f}) | {r['ece']:.4f} | {_met(r['accuracy'] >= SOURCE_TARGET)} |")
    ece = results["news"]["calibration"]["ece"]
    lines += ["", f"Sentiment calibration on news (expected calibration error, 15 bins): "
                  f"{results['news_ece_untempered']:.4f} before the temperature, {ece:.4f} after "
                  f"(target ≤ {ECE_TARGET}: {_met(ece <= ECE_TARGET)}). On all sentiment validation rows: "
                  f"{cal.get('sentiment_ece_before', float('nan')):.4f} before, {cal.get('sentiment_ece_after', float('nan')):.4f} after.",
              "", "Per-class figures, confusion matrices and reliability bins: `evaluation.json`.", "",
              "## Training history (validation after each epoch)", "",
              "| epoch | topic acc | topic macro-F1 | tweets acc | news acc | weakest news source acc | selection score | elapsed s |",
              "|---|---|---|---|---|---|---|---|"]
    for h in spec.metrics.get("history", []):
        v = h["valid"]
        s = v.get("sentiment_sources", {})
        parts = [f["accuracy"] for k, f in s.items() if k.startswith("news/")]
        lines.append(f"| {h['epoch']} | {v['topic']['accuracy']:.4f} | {v['topic']['macro_f1']:.4f} | "
                     f"{s.get('tweets', v['sentiment'])['accuracy']:.4f} | {s.get('news', v['sentiment'])['accuracy']:.4f} | "
                     f"{min(parts) if parts else float('nan'):.4f} | {h['score']:.4f} | {h['elapsed_s']} |")
    lines += ["", "The saved weights are those of the epoch with the best selection score (`models/training/validation.py`).", "",
              "## Reproduce", "", "```sh", args.command, "```", "",
              f"Settings recorded in `moodwire-model.json` (`provenance`); torch {spec.provenance.get('torch')}.", ""]
    if args.note:
        lines += ["## Notes", "", *[f"- {n}" for n in args.note], ""]
    (model / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
