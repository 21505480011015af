"""LoRA factors stored in int8: half the size of fp16, read back as floats at load.

An adapter of rank r stores, for each target layer, ``lora_A`` (r × in) and ``lora_B`` (out × r).
Each rank component k is the pair (row k of A, column k of B), and components differ in
magnitude by orders (a truncated SVD puts √σₖ in both), so each component gets its own scale:
``A[k, :] ≈ qA[k, :] · sA[k]`` and ``B[:, k] ≈ qB[:, k] · sB[k]`` with ``q`` in −127…127 and
``s = max |x| / 127`` (symmetric, round to nearest). The error this adds to a layer's change is
about 1 % of that change, itself a small part of the weight; the model card measures what it
costs in accuracy.

In ``weights.safetensors`` a quantised factor keeps its name and holds int8; its scales sit
beside it as ``<name>.scale`` in fp32, shaped to broadcast (r × 1 for A, 1 × r for B). Every
other tensor is stored as it was. A model stored this way says so in ``moodwire-model.json``
(``factor_storage: "int8"``, format 2), so a reader that predates it refuses the file by its
format instead of reading int8 numbers as weights.
"""

from __future__ import annotations

import torch

from moodwire.errors import ArtefactError

SCALE_SUFFIX = ".scale"
FACTOR_STORAGES = ("float", "int8")


def _component_dim(name: str) -> int | None:
    """The dimension that runs along one rank component: 1 for lora_A, 0 for lora_B."""
    if ".lora_A." in name:
        return 1
    if ".lora_B." in name:
        return 0
    return None


def quantize_factors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every LoRA factor in int8 and its per-component scales beside it."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        dim = _component_dim(name)
        if dim is None:
            out[name] = tensor
            continue
        values = tensor.float()
        scale = values.abs().amax(dim=dim, keepdim=True).clamp_min(1e-12) / 127
        out[name] = torch.round(values / scale).clamp(-127, 127).to(torch.int8).contiguous()
        out[name + SCALE_SUFFIX] = scale.contiguous()
    return out


def dequantize_factors(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """The float state of a file written by ``quantize_factors``; refuses a file that does not fit."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.endswith(SCALE_SUFFIX):
            if name[: -len(SCALE_SUFFIX)] not in state:
                raise ArtefactError(f"{where}: scale {name} has no factor beside it")
            continue
        dim = _component_dim(name)
        if dim is None:
            out[name] = tensor
            continue
        scale = state.get(name + SCALE_SUFFIX)
        if tensor.dtype != torch.int8 or scale is None:
            raise ArtefactError(f"{where}: {name} is not stored as int8 with its scales, as the model's "
                                "factor_storage 'int8' says")
        expected = [1, 1]
        expected[1 - dim] = tensor.shape[1 - dim]
        if list(scale.shape) != expected:
            raise ArtefactError(f"{where}: scale of {name} has shape {list(scale.shape)}, expected {expected}")
        out[name] = tensor.float() * scale.float()
    return out
