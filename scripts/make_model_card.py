"""Evaluate a trained model on the shared validation splits (fp32 and int8) and write its card.

    python scripts/make_model_card.py MODEL_DIR --command "the exact training command"

Writes MODEL_DIR/README.md and MODEL_DIR/evaluation.json with every figure measured here.
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.artefact import WEIGHTS_FILE, read_spec  # noqa: E402
from models.evaluate import evaluate  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SPLITS = {"topic": DATA / "tfnt" / "topic_valid.csv", "sentiment": DATA / "tfns" / "sent_valid.csv"}
TARGETS = {"topic": (0.89, 0.85), "sentiment": (0.87, 0.83)}
REFERENCES = {
    "topic": "FinBERT (finbert-tone) fine-tuned 0.911 acc; bert-base 0.901 acc; TF-IDF + logistic regression 0.864 / 0.840",
    "sentiment": "FinBERT fine-tuned 0.884 acc; plain 2-epoch full fine-tune of this encoder 0.850 / 0.799; TF-IDF + LR 0.836 / 0.775",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--command", required=True, help="the exact command that trained the model")
    ap.add_argument("--note", action="append", default=[], help="a line for the card's notes section")
    args = ap.parse_args()
    model = Path(args.model)
    spec = read_spec(model)
    results = {}
    for task, data in SPLITS.items():
        for int8 in (False, True):
            start = time.perf_counter()
            report = evaluate(model, task, data, quantized=int8)
            report["seconds"] = round(time.perf_counter() - start, 1)
            results[f"{task}{'_int8' if int8 else ''}"] = report
    (model / "evaluation.json").write_text(json.dumps(results, indent=2) + "\n")

    lines = [f"# {spec.label}", "",
             "Topic (20 classes) and sentiment (negative / neutral / positive) of financial news headlines, "
             "in one forward pass: one encoder, two linear heads over mean-pooled token states.", "",
             f"- Base encoder: `{spec.base}` (all-MiniLM-L6-v2, 22.7 M parameters), loaded from its PyPI package at run time.",
             f"- Fine-tuning: {spec.finetune}" + (f", LoRA r={spec.lora.r}, alpha={spec.lora.alpha}, dropout={spec.lora.dropout} "
                                                  f"on {', '.join(spec.lora.target_modules)}; LayerNorms and heads trained"
                                                  if spec.finetune == "lora" else ""),
             f"- Stored here: adapter + LayerNorms + heads, {(model / WEIGHTS_FILE).stat().st_size / 1e6:.2f} MB.",
             f"- Maximum length {spec.max_length} tokens; links are removed and HTML entities unescaped before tokenising.",
             "- Training data: zeroshot Twitter Financial News sentiment (tfns) and topic (tfnt) train splits (MIT).", "",
             "## Measured on the validation splits", "",
             "Measured with `moodwire evaluate` on this directory (fp32) and with `--int8` (the CPU path of the "
             f"inference engine), on {platform.machine()} CPU, torch threads as configured.", "",
             "| task | path | n | accuracy | macro-F1 | target (acc / macro-F1) | met |",
             "|---|---|---|---|---|---|---|"]
    for task in SPLITS:
        for suffix, path in (("", "fp32"), ("_int8", "int8")):
            r = results[task + suffix]
            acc_t, f1_t = TARGETS[task]
            met = "yes" if r["accuracy"] >= acc_t and r["macro_f1"] >= f1_t else "no"
            lines.append(f"| {task} | {path} | {r['n']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                         f"{acc_t:.2f} / {f1_t:.2f} | {met} |")
    lines += ["", "References on the same splits (from ../shared/data/README.md and the issue):", ""]
    lines += [f"- {task}: {ref}" for task, ref in REFERENCES.items()]
    lines += ["", "Per-class figures and confusion matrices: `evaluation.json`.", "",
              "## Training history (validation after each epoch)", "",
              "| epoch | topic acc | topic macro-F1 | sentiment acc | sentiment macro-F1 | elapsed s |",
              "|---|---|---|---|---|---|"]
    for h in spec.metrics.get("history", []):
        v = h["valid"]
        lines.append(f"| {h['epoch']} | {v['topic']['accuracy']:.4f} | {v['topic']['macro_f1']:.4f} | "
                     f"{v['sentiment']['accuracy']:.4f} | {v['sentiment']['macro_f1']:.4f} | {h['elapsed_s']} |")
    lines += ["", "The saved weights are those of the epoch with the best mean of the four validation figures.", "",
              "## Reproduce", "", "```sh", args.command, "```", "",
              f"Settings recorded in `moodwire-model.json` (`provenance.config`); torch {spec.provenance.get('torch')}.",
              ""]
    if args.note:
        lines += ["## Notes", "", *[f"- {n}" for n in args.note], ""]
    (model / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
