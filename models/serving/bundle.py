"""Serving without PyTorch: a model *bundle* (the ONNX graphs the CPU runtime builds, int8 and
fp32, the tokenizer and the labels, made once by ``moodwire bundle``) run by ONNX Runtime with
numpy; ``MOODWIRE_INT8`` picks the graph as it does for a model folder. The lean CPU image (``Dockerfile.cpu``) holds bundles only, so its stages never import
torch; everything else, and a plain model folder, goes through ``models.serving.engine``.

``open_engine`` is what the stages call: a bundle folder gives a ``BundleEngine``, any other
model folder an ``InferenceEngine`` (imported only then). Both offer ``label``, ``spec``
(``topic_labels``, ``sentiment_labels``), ``device``, ``prepare``/``run``, ``classify`` and
``close``, and give the same predictions for the same ONNX graph.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodwire.errors import ModelError

BUNDLE_FILE = "serving.json"
GRAPHS = {True: "model-int8.onnx", False: "model-fp32.onnx"}  # by MOODWIRE_INT8
TOKENIZER_DIR = "tokenizer"


@dataclass(frozen=True)
class Prediction:
    topic: str
    topic_confidence: float
    sentiment: str
    probs: dict[str, float]  # negative / neutral / positive
    score: float  # p_positive - p_negative


@dataclass(frozen=True)
class BundleSpec:
    label: str
    topic_labels: list[str]
    sentiment_labels: list[str]
    max_length: int


def predictions(topic: np.ndarray, sentiment: np.ndarray, topics: Sequence[str],
                sentiments: Sequence[str]) -> list[Prediction]:
    """Predictions from probability rows (numpy; ``models.serving.engine`` passes torch's as numpy)."""
    neg, pos = sentiments.index("negative"), sentiments.index("positive")
    best, conf, s_best = topic.argmax(-1).tolist(), topic.max(-1).tolist(), sentiment.argmax(-1).tolist()
    rows = sentiment.tolist()
    return [Prediction(topic=topics[best[i]], topic_confidence=conf[i], sentiment=sentiments[s_best[i]],
                       probs=dict(zip(sentiments, row)), score=max(-1.0, min(1.0, row[pos] - row[neg])))
            for i, row in enumerate(rows)]


def is_bundle(directory: str | Path) -> bool:
    return (Path(directory) / BUNDLE_FILE).is_file()


def open_engine(model_dir: str | Path | None, **options):
    """The engine for ``model_dir``: a bundle runs without torch; a model folder loads
    ``models.serving.engine.InferenceEngine`` with ``options`` (``Settings.engine_options``)."""
    if model_dir is not None and is_bundle(model_dir):
        if options.get("device") == "cuda":
            raise ModelError(f"{model_dir} is an ONNX bundle for CPUs; MOODWIRE_DEVICE=cuda needs a model folder "
                             "and the GPU image")
        return BundleEngine(model_dir, int8=options.get("int8"))
    from models.serving.engine import InferenceEngine

    return InferenceEngine(model_dir, **options)


@dataclass(frozen=True)
class Prepared:
    n: int
    batches: list  # (original indices, input ids, attention mask) per length bucket


class BundleEngine:
    """A bundle loaded into one ONNX Runtime session. Thread-safe for one caller at a time."""

    device = "cpu"
    runtime = "onnx"

    def __init__(self, directory: str | Path, int8: bool | None = None, batch_size: int = 32,
                 threads: int | None = None) -> None:
        """``int8``: the int8 graph (the default, as the CPU runtime) or the fp32 one, whose
        scores do not depend on how items are batched (int8 activations are quantised per
        call)."""
        try:
            import onnxruntime as ort
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise ModelError(f"serving a bundle needs onnxruntime and transformers: {exc}") from None
        from models.serving.batching import encode

        self.model_dir = Path(directory)
        try:
            meta = json.loads((self.model_dir / BUNDLE_FILE).read_text(encoding="utf-8"))
            self.spec = BundleSpec(meta["label"], list(meta["topic_labels"]), list(meta["sentiment_labels"]),
                                   int(meta["max_length"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{self.model_dir / BUNDLE_FILE} is not a Moodwire bundle: {exc}; "
                             "make one with moodwire bundle") from None
        self.int8 = True if int8 is None else int8
        graph = self.model_dir / GRAPHS[self.int8]
        if not graph.is_file():
            raise ModelError(f"{graph} is missing: the bundle is incomplete; make it again with moodwire bundle")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir / TOKENIZER_DIR)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads or len(os.sched_getaffinity(0)))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(graph), options,
                                            providers=["CPUExecutionProvider"])
        self.batch_size = batch_size
        self.reads_targets = "entity" in [o.name for o in self.session.get_outputs()]
        self._pools = "pool_mask" in [i.name for i in self.session.get_inputs()]
        self._encode = encode
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()  # as in models.serving.engine: calls take turns

    @property
    def label(self) -> str:
        return self.spec.label

    def prepare(self, texts: Sequence[str]) -> Prepared:
        texts = [t if isinstance(t, str) else "" for t in texts]
        if not texts:
            return Prepared(0, [])
        with self._tokenizer_lock:
            ids = self._encode(self.tokenizer, texts, self.spec.max_length)
        return Prepared(len(texts), self._padded(ids))

    def _padded(self, ids: list[list[int]]) -> list:
        return padded_batches(ids, self.tokenizer.pad_token_id, self.batch_size)

    def read_targets(self, texts: Sequence[str], entities: Sequence[str]) -> np.ndarray:
        """Entity-head probabilities of the sentiment toward ``entities[i]`` in ``texts[i]``."""
        from models.serving.batching import encode_pairs

        if not self.reads_targets:
            raise ModelError(f"bundle {self.label} has no entity head; it cannot read targeted sentiment")
        with self._tokenizer_lock:
            ids, pools = encode_pairs(self.tokenizer, texts, entities, self.spec.max_length)
        with self._lock:
            return entity_probabilities(self.session, ids, pools, self.tokenizer.pad_token_id, self.batch_size,
                                        len(self.spec.sentiment_labels))

    def run(self, prepared: Prepared) -> list[Prediction]:
        if prepared.n == 0:
            return []
        topic = np.empty((prepared.n, len(self.spec.topic_labels)), dtype=np.float32)
        sentiment = np.empty((prepared.n, len(self.spec.sentiment_labels)), dtype=np.float32)
        with self._lock:
            for batch, input_ids, mask in prepared.batches:
                feed = {"input_ids": input_ids, "attention_mask": mask, **({"pool_mask": mask} if self._pools else {})}
                t, s = self.session.run(None, feed)[:2]
                topic[batch], sentiment[batch] = t, s
        return predictions(_softmax(topic), _softmax(sentiment), self.spec.topic_labels, self.spec.sentiment_labels)

    def classify(self, texts: Sequence[str], chunk: int = 4096) -> list[Prediction]:
        out: list[Prediction] = []
        for start in range(0, len(texts), chunk):
            out += self.run(self.prepare(texts[start:start + chunk]))
        return out

    def close(self) -> None:
        pass


def padded_batches(ids: list[list[int]], pad_id: int, batch_size: int) -> list:
    """Length-sorted batches of token ids as numpy: (indices, input ids, attention mask) each."""
    from models.serving.batching import length_sorted_batches

    batches = []
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        width = max(len(ids[i]) for i in batch)
        input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, i in enumerate(batch):
            input_ids[row, :len(ids[i])] = ids[i]
            mask[row, :len(ids[i])] = 1
        batches.append((batch, input_ids, mask))
    return batches


def entity_probabilities(session, ids: list[list[int]], pools: list[list[int]], pad_id: int,
                         batch_size: int, labels: int) -> np.ndarray:
    """The entity head's probabilities (one row of ``labels`` per pair) for pairs made by
    ``encode_pairs``, through an ONNX Runtime session in numpy only: a torch op between the
    session's calls wakes torch's thread pool beside ONNX Runtime's (on 2 cores, torch tensors
    here made a targeted read 8-21 % slower in the run that chose this)."""
    from models.serving.batching import pool_mask

    out = np.empty((len(ids), labels), dtype=np.float32)
    for batch, input_ids, mask in padded_batches(ids, pad_id, batch_size):
        out[batch] = session.run(None, {"input_ids": input_ids, "attention_mask": mask,
                                        "pool_mask": pool_mask([pools[i] for i in batch], mask.shape[1])})[2]
    return _softmax(out)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def write_bundle(model_dir: str | Path, out: str | Path) -> Path:
    """Build the bundle of a model folder into ``out``: both graphs (int8 and fp32), the
    tokenizer, the labels. Needs torch: the build stage's job."""
    import torch

    from models.serving.artefact import load_model
    from models.serving.onnx_cpu import build

    model, tokenizer, spec = load_model(model_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for int8, name in GRAPHS.items():
        build(model, int8, out / name)
    tokenizer.save_pretrained(out / TOKENIZER_DIR)
    (out / BUNDLE_FILE).write_text(json.dumps({
        "label": spec.label, "topic_labels": list(spec.topic_labels), "sentiment_labels": list(spec.sentiment_labels),
        "max_length": spec.max_length, "graphs": {"int8": GRAPHS[True], "fp32": GRAPHS[False]},
        "built_from": str(model_dir), "torch": torch.__version__}, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["BundleEngine", "BundleSpec", "Prediction", "open_engine", "is_bundle", "write_bundle", "predictions"]
