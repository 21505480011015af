"""The CPU runtime: the model exported to ONNX, fused and int8-quantised by ONNX Runtime.

On CPUs without int8 dot-product instructions (AVX2 only, as the project's reference
machine) PyTorch's dynamically quantised Linear layers leave the rest of each transformer
block — attention, GELU, LayerNorm, the residual adds — as separate unfused ops. ONNX
Runtime fuses a BERT block into four kernels (Attention, BiasGelu, two SkipLayerNorms) and
runs int8 matrix products with its own kernels; with every block in int8 it stays within
0.4 points of fp32 on the validation sets (see docs/model.md), where PyTorch's int8 path
has to keep the first block in fp32 to stay within 1 point.

Everything that touches ONNX or ONNX Runtime lives in this module:

- ``export`` traces the merged fp32 network with ``torch.onnx.export(dynamo=False)``. The
  TorchScript exporter is the one whose graphs ONNX Runtime's BERT fusions recognise (the
  newer torch.export-based exporter needs onnxscript and produces other patterns);
  torch marks it deprecated, so the warnings it prints are silenced here only, and
  ``tests/models/test_onnx_cpu.py`` checks on the installed torch that the fusions still
  happen.
- ``build`` optimises the graph (``onnxruntime.transformers.optimizer``) and, for int8,
  quantises the weights of the encoder's matrix products (MatMul and fused Attention) per
  output channel, activations per call; the embeddings, the two heads (Gemm) and the blocks
  in ``FP32_BLOCKS`` stay fp32.
- The result is cached under a key made of the network's exact weights, its temperatures,
  the int8 choice and the versions of torch and ONNX Runtime, so a second start of the same
  model loads in about a second; the cache file is written to a temporary name and
  renamed, so two processes starting at once never read half a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from moodwire.errors import ModelError

# Transformer blocks whose matrix products stay fp32 in int8 builds. None: with every block in
# int8 the default model stays within 0.4 points of fp32 on each validation set (keeping the
# first block in fp32 moved the sets by -0.4 to 0 points and cost ~10 % of the items/s).
FP32_BLOCKS: tuple[int, ...] = ()
log = logging.getLogger(__name__)
FORMAT = 2  # bump when the export or optimisation steps change what a cached file holds


def _require_runtime():
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("the ONNX CPU runtime needs the onnxruntime package: pip install onnxruntime onnx "
                         "(or set MOODWIRE_CPU_RUNTIME=torch)") from None
    return onnxruntime


def cache_key(model: torch.nn.Module, int8: bool) -> str:
    """Digest of everything the built file depends on."""
    ort = _require_runtime()
    digest = hashlib.sha256(f"{FORMAT}|{int8}|{FP32_BLOCKS}|{torch.__version__}|{ort.__version__}|"
                            f"{model.temperatures}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


class _AllHeads(torch.nn.Module):
    """The network with every head as an output: the entity head's too, when it has one."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None):
        return self.model.forward_all(input_ids, attention_mask, pool_mask)


def export(model: torch.nn.Module, path: Path) -> None:
    """The fp32 network as an ONNX graph with dynamic batch and sequence axes; outputs topic,
    sentiment and, for a model with the entity head, entity (with a third input, pool_mask: the
    positions the entity head pools; the attention mask where a batch reads no entity)."""
    model = model.float().eval()
    entity = getattr(model, "entity_head", None) is not None
    inputs = ["input_ids", "attention_mask"] + (["pool_mask"] if entity else [])
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in inputs)
    outputs = ["topic", "sentiment"] + (["entity"] if entity else [])
    axes = {**{name: {0: "batch", 1: "sequence"} for name in inputs}, **{name: {0: "batch"} for name in outputs}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(_AllHeads(model), example, str(path), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)


def build(model: torch.nn.Module, int8: bool, out: Path) -> dict:
    """Export, fuse and (int8) quantise ``model`` into ``out``; returns the fused-op counts."""
    _require_runtime()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    config = model.encoder.config
    with tempfile.TemporaryDirectory(prefix="moodwire-onnx-") as work:
        raw, fused = Path(work) / "raw.onnx", Path(work) / "fused.onnx"
        export(model, raw)
        with _errors_only("onnxruntime.transformers"):  # it logs every fusion it makes
            optimized = optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                                 hidden_size=config.hidden_size)
        fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        if not int8:
            optimized.save_model_to_file(str(out))
            return fusions
        optimized.save_model_to_file(str(fused))
        keep = _fp32_nodes(optimized.model.graph, FP32_BLOCKS)
        with _errors_only(None):  # quantize_dynamic advises "pre-processing" on the root logger
            quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=keep,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return fusions


@contextmanager
def _errors_only(name: str | None):
    """Raise the logger ``name`` (None: the root logger) to ERROR for the block's duration."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _fp32_nodes(graph, blocks: tuple[int, ...]) -> list[str]:
    """Names of the nodes left in fp32: the heads, and every matrix product of ``blocks``.

    The fused Attention node of a block carries a generated name, so it is found as the
    producer of the input of that block's attention output projection.
    """
    producers = {output: node.name for node in graph.node for output in node.output}
    # quantize_dynamic rewrites each Gemm (the heads) as MatMul + Add before it applies the
    # exclusions, naming the MatMul "<Gemm name>_MatMul": both names are listed.
    keep = [name for n in graph.node if n.op_type == "Gemm" for name in (n.name, n.name + "_MatMul")]
    for node in graph.node:
        if any(f"/layer.{b}/" in node.name for b in blocks):
            keep.append(node.name)
            if "/attention/output/dense/" in node.name and node.input[0] in producers:
                keep.append(producers[node.input[0]])
    return keep


def runner(model: torch.nn.Module, int8: bool, cache_dir: str | Path | None, threads: int) -> "OnnxRunner":
    """A session for ``model``: from ``cache_dir`` when built there before, else built now.

    Without a cache folder the model is built in a temporary folder, loaded, and the folder
    removed (built again at every start).
    """
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="moodwire-onnx-") as work:
            path = Path(work) / "model.onnx"
            build(model, int8, path)
            return OnnxRunner(path, threads)
    folder = Path(cache_dir)
    path = folder / f"{cache_key(model, int8)}-{'int8' if int8 else 'fp32'}.onnx"
    if not path.is_file():
        log.info("building the ONNX CPU model %s (once per model and runtime version, ~10 s)", path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=folder, suffix=".partial")
            os.close(fd)
        except OSError as exc:
            raise ModelError(f"cannot write to the ONNX cache folder {folder} ({exc.strerror}); "
                             "set MOODWIRE_ONNX_CACHE to a writable folder") from None
        try:
            build(model, int8, Path(partial))
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return OnnxRunner(path, threads)


class OnnxRunner:
    """One ONNX Runtime session: ``(input_ids, attention_mask) -> (topic logits, sentiment logits)``."""

    def __init__(self, path: Path, threads: int) -> None:
        ort = _require_runtime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.pools = "pool_mask" in [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output's logits on headlines: (topic, sentiment[, entity]); a graph with the
        entity head pools every token there (the entity pass feeds the session itself:
        ``models.serving.bundle.entity_probabilities``)."""
        feed = {"input_ids": input_ids.numpy().astype(np.int64), "attention_mask": mask.numpy().astype(np.int64)}
        if self.pools:
            feed["pool_mask"] = feed["attention_mask"]
        outputs = self.session.run(None, feed)
        return tuple(torch.from_numpy(o) for o in outputs)
