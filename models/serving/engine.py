"""The batched inference engine the Kafka stages call: ``classify(texts) -> predictions``.

- Texts are cleaned and tokenised once, sorted by length and cut into buckets,
  each padded only to its own longest member; results come back in input order.
- CPU: the network exported to ONNX and run by ONNX Runtime, its transformer blocks fused
  and, by default, its encoder's matrix products int8 per output channel
  (models/serving/onnx_cpu.py). ``runtime="torch"`` runs PyTorch instead: dynamic int8
  quantisation of the encoder's Linear layers except the first block's.
- GPU: fp16 weights, pinned host memory, non-blocking copies, and tokenisation of
  the next chunk overlapping inference of the current one (a worker thread; the
  Rust tokenizer releases the GIL).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.serving.artefact import DEFAULT_MODEL_DIR, load_model
from models.serving.batching import encode, encode_pairs, length_sorted_batches, pad
from moodwire.errors import ModelError
from models.serving.bundle import Prediction, entity_probabilities, predictions
from models.serving.predict import entity_logits


RUNTIMES = ("onnx", "torch")  # CPU runtimes
FP32_BLOCKS = ("layer.0.",)  # transformer blocks the torch int8 path leaves in fp32 (see quantize_int8)


def quantize_int8(model: nn.Module) -> nn.Module:
    """PyTorch's dynamic int8 quantisation of the encoder's Linear layers, per output channel
    (the CPU runtime ``torch``).

    Per-tensor quantisation cost 1.4 points of topic accuracy on the validation split;
    per-channel costs 0.7 (see the model card). The two small heads stay in fp32, and so do
    the layers of the first transformer block (``FP32_BLOCKS``): the error quantisation adds
    there passes through every later block — with all blocks in int8 a model lost 1.3 points
    of news accuracy against fp32, with the first kept in fp32 0.3, for a sixth of the
    encoder's matrix work left in fp32.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch 2.10+ announces at every load that its quantised-tensor constructors will be
        # removed; the int8 path is tested against the torch it runs on (tests/models), so
        # the notice says nothing a user can act on. Only that message is hidden.
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
                                category=UserWarning)
        chosen = {name: per_channel_dynamic_qconfig for name, module in model.encoder.named_modules()
                  if isinstance(module, nn.Linear) and not any(block in name for block in FP32_BLOCKS)}
        model.encoder = quantize_dynamic(model.encoder, chosen, dtype=torch.qint8)
    return model


def pick_device(requested: str = "auto", setting: str = "MOODWIRE_DEVICE") -> torch.device:
    """``auto`` (CUDA when visible), ``cpu`` or ``cuda``; ``setting`` names where the value
    came from in the error (``MOODWIRE_DEVICE``, ``--device``)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"{setting}=cuda but no CUDA device is visible; use auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested not in ("cpu", "cuda"):
        raise ModelError(f"{setting}={requested!r}: use auto, cpu or cuda")
    return torch.device(requested)


@dataclass(frozen=True)
class Prepared:
    """A tokenised batch: (original indices, input ids, attention mask) per length bucket."""

    n: int
    batches: list


class InferenceEngine:
    """A loaded model ready to classify batches of texts. Thread-safe for one caller at a time."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "auto", int8: bool | None = None,
                 batch_size: int | None = None, chunk_size: int | None = None, runtime: str = "onnx",
                 cache_dir: str | Path | None = None) -> None:
        """``runtime`` (CPU only): ``onnx`` or ``torch``; ``cache_dir``: where the ONNX runtime
        keeps built models between starts (none: rebuilt at every start, ~10 s)."""
        if runtime not in RUNTIMES:
            raise ModelError(f"CPU runtime {runtime!r}: use one of {', '.join(RUNTIMES)} (MOODWIRE_CPU_RUNTIME)")
        self.model_dir = Path(model_dir or DEFAULT_MODEL_DIR)
        model, self.tokenizer, self.spec = load_model(self.model_dir)
        self.device = pick_device(device)
        self.runtime = "torch" if self.device.type == "cuda" else runtime
        self.model: nn.Module | None = None
        if self.device.type == "cuda":
            self.model = model.half().to(self.device).eval()
            self.int8 = False
        else:
            self.int8 = True if int8 is None else int8
            if self.runtime == "onnx":
                from models.serving.onnx_cpu import runner

                self._onnx = runner(model, self.int8, cache_dir, torch.get_num_threads())
            else:
                self.model = (quantize_int8(model) if self.int8 else model).eval()
        self.batch_size = batch_size or (256 if self.device.type == "cuda" else 32)
        # A bulk call is tokenised and length-sorted a chunk at a time. On a GPU small chunks let
        # tokenisation overlap inference; on the CPU, where inference is the whole cost, one
        # sort over more texts pads less (4,096 texts: ~15 % more items/s than 256).
        self.chunk_size = chunk_size or self.batch_size * (8 if self.device.type == "cuda" else 128)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        self._lock = threading.Lock()
        # The Rust tokenizer is reconfigured (truncation) by every call: the main thread prepares
        # batch N+1 while the inference thread reads batch N's targets, so calls take turns.
        self._tokenizer_lock = threading.Lock()

    @property
    def label(self) -> str:
        """Name and version of the model, as recorded in every scored item."""
        return self.spec.label

    def _tokenize(self, texts: Sequence[str]) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
        with self._tokenizer_lock:
            ids = encode(self.tokenizer, texts, self.spec.max_length)
        batches = []
        for batch in length_sorted_batches([len(x) for x in ids], self.batch_size):
            input_ids, mask = pad([ids[i] for i in batch], self.tokenizer.pad_token_id)
            if self.device.type == "cuda":
                input_ids, mask = input_ids.pin_memory(), mask.pin_memory()
            batches.append((batch, input_ids, mask))
        return batches

    @torch.inference_mode()
    def _infer(self, prepared, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        topic = torch.empty((n, len(self.spec.topic_labels)))
        sentiment = torch.empty((n, len(self.spec.sentiment_labels)))
        for batch, input_ids, mask in prepared:
            if self.runtime == "onnx":
                t_logits, s_logits = self._onnx(input_ids, mask)[:2]
            else:
                t_logits, s_logits = self.model(input_ids.to(self.device, non_blocking=True),
                                                mask.to(self.device, non_blocking=True))
            index = torch.tensor(batch)
            topic[index] = t_logits.float().cpu()
            sentiment[index] = s_logits.float().cpu()
        # One softmax over the whole chunk, after the loop: between ONNX Runtime's calls a
        # torch op per batch wakes torch's own thread pool, and on two cores the two pools
        # spinning against each other cost a tenth of the throughput.
        return topic.softmax(-1), sentiment.softmax(-1)

    def _chunks(self, texts: Sequence[str]) -> Iterator[Sequence[str]]:
        for start in range(0, len(texts), self.chunk_size):
            yield texts[start : start + self.chunk_size]

    def prepare(self, texts: Sequence[str]) -> "Prepared":
        """Tokenise and bucket a batch (CPU work; may run while another batch is inferred)."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        return Prepared(len(texts), self._tokenize(texts) if texts else [])

    def run(self, prepared: "Prepared") -> list[Prediction]:
        """Inference of a prepared batch; predictions in the order of its texts."""
        if prepared.n == 0:
            return []
        with self._lock:
            topic, sentiment = self._infer(prepared.batches, prepared.n)
        return self._predictions(topic, sentiment)

    def probabilities(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(topic probs, sentiment probs) for every text, in input order."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        if not texts:
            return torch.empty((0, len(self.spec.topic_labels))), torch.empty((0, len(self.spec.sentiment_labels)))
        with self._lock:
            chunks = list(self._chunks(texts))
            topics, sentiments = [], []
            pending = self._pool.submit(self._tokenize, chunks[0])
            for i, chunk in enumerate(chunks):
                prepared = pending.result()
                if i + 1 < len(chunks):  # tokenise the next chunk while this one runs
                    pending = self._pool.submit(self._tokenize, chunks[i + 1])
                t, s = self._infer(prepared, len(chunk))
                topics.append(t)
                sentiments.append(s)
        return torch.cat(topics), torch.cat(sentiments)

    @property
    def reads_targets(self) -> bool:
        """Whether the model has the entity head (targeted sentiment)."""
        return self.spec.entity

    @torch.inference_mode()
    def read_targets(self, texts: Sequence[str], entities: Sequence[str]):
        """Entity-head probabilities (numpy, one row per pair, sentiment labels' order) of the
        sentiment toward ``entities[i]`` in ``texts[i]``."""
        if not self.reads_targets:
            raise ModelError(f"model {self.label} has no entity head; it cannot read targeted sentiment")
        with self._tokenizer_lock:
            ids, pools = encode_pairs(self.tokenizer, texts, entities, self.spec.max_length)
        with self._lock:
            if self.runtime == "onnx":
                return entity_probabilities(self._onnx.session, ids, pools, self.tokenizer.pad_token_id,
                                            self.batch_size, len(self.spec.sentiment_labels))
            logits = entity_logits(self.model, ids, pools, self.tokenizer.pad_token_id, self.batch_size)
        return logits.softmax(-1).numpy()

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return self._predictions(*self.probabilities(texts))

    def _predictions(self, topic: torch.Tensor, sentiment: torch.Tensor) -> list[Prediction]:
        return predictions(topic.numpy(), sentiment.numpy(), self.spec.topic_labels, self.spec.sentiment_labels)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
