"""Inference engine vs. the plain ``transformers.pipeline`` baseline, same texts, same process.

The engine paths: on the CPU, the default runtime (ONNX Runtime) in int8 and fp32, and the
PyTorch runtime in int8; on a GPU, fp16. Each engine path classifies the texts ``--repeat``
times and reports the median pass (the baseline runs once: it is the slow side).

The baseline is what a user would write: one ``pipeline("text-classification")`` per task
(topic, sentiment) over the same encoder weights and heads, called on the list of texts with
truncation. The engine classifies both tasks in one pass. Items/s counts texts that received
both a topic and a sentiment. Runs unchanged on CPU or CUDA (``--device``).

    python bench/bench_engine.py [--model DIR] [--n 1000] [--device auto|cpu|cuda] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import BertConfig, BertModel, BertPreTrainedModel, pipeline  # noqa: E402
from transformers.modeling_outputs import SequenceClassifierOutput  # noqa: E402

from models.serving.artefact import DEFAULT_MODEL_DIR, load_model  # noqa: E402
from models.training.data import load_labelled  # noqa: E402
from models.serving.engine import InferenceEngine, pick_device  # noqa: E402
from models.serving.labels import LabelMap  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


class MeanPooledBertForSequenceClassification(BertPreTrainedModel):
    """The trained encoder and one head, as a standard sequence-classification model."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.classifier(pooled))


class _OwnClassNotice(logging.Filter):
    """Drops the pipeline's "The model 'MeanPooledBertForSequenceClassification' is not supported
    for text-classification. Supported models are [… 120 names …]" notice: the class is this
    script's own on purpose (the network mean-pools, as the engine does) and the pipeline runs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"'{MeanPooledBertForSequenceClassification.__name__}' is not supported" not in record.getMessage()


logging.getLogger("transformers.pipelines.base").addFilter(_OwnClassNotice())


def baseline_pipelines(model_dir: Path, device: torch.device):
    model, tokenizer, spec = load_model(model_dir)
    pipes = {}
    for task, head, names in (("topic", model.topic_head, spec.topic_labels),
                              ("sentiment", model.sentiment_head, spec.sentiment_labels)):
        config = BertConfig.from_dict({**model.encoder.config.to_dict(), "num_labels": len(names),
                                       "id2label": dict(enumerate(names)),
                                       "label2id": {n: i for i, n in enumerate(names)}})
        clf = MeanPooledBertForSequenceClassification(config)
        clf.bert.load_state_dict(model.encoder.state_dict())
        clf.classifier.load_state_dict(head.state_dict())
        clf.eval()
        pipes[task] = pipeline("text-classification", model=clf, tokenizer=tokenizer,
                               device=0 if device.type == "cuda" else -1)
    return pipes, spec


def accuracy(predicted: list[str], names: list[str], gold: list[int]) -> float:
    return sum(names.index(p) == g for p, g in zip(predicted, gold)) / len(gold)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--n", type=int, default=1000, help="texts per task (topic valid + sentiment valid)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--baseline-batch", type=int, default=0,
                    help="batch_size passed to the pipelines (0 = the pipeline default, as a user would call it)")
    ap.add_argument("--repeat", type=int, default=3, help="engine passes over the texts; the median is reported")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    device = pick_device(args.device)

    tmap_names, smap_names = None, None
    pipes, spec = baseline_pipelines(Path(args.model), device)
    tmap_names, smap_names = spec.topic_labels, spec.sentiment_labels
    topic = load_labelled(DATA / "tfnt" / "topic_valid.csv", LabelMap("topic", tuple(tmap_names))).subset(args.n)
    sent = load_labelled(DATA / "tfns" / "sent_valid.csv", LabelMap("sentiment", tuple(smap_names))).subset(args.n)
    texts = topic.texts + sent.texts
    results = {"device": str(device), "n_texts": len(texts), "torch_threads": torch.get_num_threads()}

    # Baseline: one pipeline per task over every text.
    kwargs = {"truncation": True, "max_length": spec.max_length}
    if args.baseline_batch:
        kwargs["batch_size"] = args.baseline_batch
    pipes["topic"](texts[:8], **kwargs), pipes["sentiment"](texts[:8], **kwargs)  # warm-up
    start = time.perf_counter()
    base_topic = [r["label"] for r in pipes["topic"](texts, **kwargs)]
    base_sent = [r["label"] for r in pipes["sentiment"](texts, **kwargs)]
    base_s = time.perf_counter() - start
    results["baseline"] = {
        "items_per_s": len(texts) / base_s, "batch_size": args.baseline_batch or 1,
        "topic_accuracy": accuracy(base_topic[: len(topic)], tmap_names, topic.labels),
        "sentiment_accuracy": accuracy(base_sent[len(topic):], smap_names, sent.labels)}
    del pipes

    paths = [("engine_gpu_fp16", {"device": "cuda"})] if device.type == "cuda" else [
        ("engine_cpu_int8", {"device": "cpu", "int8": True}), ("engine_cpu_fp32", {"device": "cpu", "int8": False}),
        ("engine_torch_int8", {"device": "cpu", "int8": True, "runtime": "torch"})]
    for name, opts in paths:
        engine = InferenceEngine(args.model, **opts)
        engine.classify(texts[:64])  # warm-up
        rounds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            preds = engine.classify(texts)
            rounds.append(time.perf_counter() - start)
        secs = sorted(rounds)[len(rounds) // 2]
        results[name] = {
            "items_per_s": len(texts) / secs, "batch_size": engine.batch_size,
            "speedup_vs_baseline": (len(texts) / secs) / results["baseline"]["items_per_s"],
            "topic_accuracy": accuracy([p.topic for p in preds[: len(topic)]], tmap_names, topic.labels),
            "sentiment_accuracy": accuracy([p.sentiment for p in preds[len(topic):]], smap_names, sent.labels)}
        engine.close()

    print(f"{'path':<18} {'items/s':>9} {'batch':>6} {'x baseline':>10} {'topic acc':>10} {'sent acc':>9}")
    for name in ["baseline"] + [p for p, _ in paths]:
        r = results[name]
        print(f"{name:<18} {r['items_per_s']:9.1f} {r['batch_size']:6d} {r.get('speedup_vs_baseline', 1.0):10.2f} "
              f"{r['topic_accuracy']:10.4f} {r['sentiment_accuracy']:9.4f}")
    print(json.dumps(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
