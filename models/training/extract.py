"""Models made from models: a uniform weight average (``average_models``) and a fully
fine-tuned model stored at the size of a LoRA adapter (``lora_from_full``).

**Averaging** (a "model soup", Wortsman et al. 2022): models fine-tuned from one starting point
usually sit in one basin of the loss, and the mean of their weights often generalises better
than each of them. Every source is loaded as served (a LoRA adapter merged into its encoder), so
LoRA and full models average alike; the result is a full model without temperatures (fit them
with ``moodwire calibrate``).

**Cutting to a LoRA adapter:**

For each Linear layer of the encoder that LoRA targets, the change the fine-tune made to its
weight (fine-tuned minus base) is cut to its best rank-``r`` approximation — a truncated SVD,
the most a LoRA adapter of rank ``r`` can hold — and written as that adapter (alpha = r, so the
adapter adds exactly the approximation). Kept whole beside it: the LayerNorms, the Linear
layers' biases, the position and token-type embeddings and the two heads. Dropped: what the
approximation leaves of each change, and the changes to the word embeddings (11.7 M numbers for
MiniLM, which barely move in a fine-tune). ``lora_from_full`` reports how much of the change each
adapter kept; the model card measures what the approximation costs in accuracy.

The result is an ordinary LoRA model directory: it loads, serves and quantises as any other.
With ``int8_factors`` its factors are stored in int8 (``models/serving/factors.py``), half the size of fp16.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from models.serving.artefact import LoraSettings, build_network, load_model, save_model
from moodwire.errors import ArtefactError, ModelError

KEPT_WHOLE = ("LayerNorm", ".bias", "position_embeddings", "token_type_embeddings", "_head.")


def average_models(sources: list[str | Path], output: str | Path, version: str = "dev") -> Path:
    """Write ``output``: a full model whose every weight is the mean of the sources'."""
    if len(sources) < 2:
        raise ModelError("averaging needs at least two models")
    loaded = [load_model(source) for source in sources]
    _, _, spec = loaded[0]
    for (_, _, other), source in zip(loaded[1:], sources[1:]):
        for name in ("topic_labels", "sentiment_labels", "max_length"):
            if getattr(other, name) != getattr(spec, name):
                raise ModelError(f"{source}: its {name} differs from {sources[0]}'s; only models of one task average")
        if other.base != spec.base:
            raise ModelError(f"{source}: base {other.base!r} differs from {sources[0]}'s {spec.base!r}")
    tags = _merged_tags(sources, [m for _, _, m in loaded])
    states = [model.state_dict() for model, _, _ in loaded]
    averaged = {k: sum(state[k].float() for state in states) / len(states) for k in states[0]}
    out_spec = replace(spec, finetune="full", lora=LoraSettings(), version=version, calibration={}, metrics={},
                       source_tags=tags,
                       provenance={"average_of": [{"model": str(s), "label": m.label, "provenance": m.provenance}
                                                  for s, (_, _, m) in zip(sources, loaded)]})
    net, _ = build_network(out_spec)
    net.load_state_dict(averaged)
    return save_model(net, out_spec, output)


def _merged_tags(sources, specs) -> dict:
    """The source tags of an average: every model's, refused where two tag one source differently."""
    tags: dict = {}
    for source, spec in zip(sources, specs):
        for name, tag in spec.source_tags.items():
            if tags.setdefault(name, tag) != tag:
                raise ModelError(f"{source}: tags the source {name!r} as {tag!r}, another model as {tags[name]!r}; "
                                 "only models that tag a source alike average")
    return tags


def lora_from_full(source: str | Path, output: str | Path, rank: int, half: bool = False,
                   int8_factors: bool = False, version: str | None = None) -> dict:
    """Write ``output``: the full fine-tune in ``source`` as a rank-``rank`` LoRA model (its
    weights in fp16 with ``half``: half the size, the same predictions to ~1e-3; the adapter's
    factors in int8 with ``int8_factors``, about half again — ``models/serving/factors.py``).
    Returns ``{"rank", "kept_energy_min", "kept_energy_mean", "layers"}``."""
    if rank < 1:
        raise ModelError(f"--lora-rank must be at least 1, not {rank}")
    tuned, _, spec = load_model(source)
    if spec.finetune != "full":
        raise ArtefactError(f"{source} is a {spec.finetune!r} model; only a full fine-tune ('full') is cut to a LoRA adapter")
    lora = LoraSettings(r=rank, alpha=rank, dropout=0.0, target_modules=list(LoraSettings().target_modules))
    out_spec = replace(spec, finetune="lora", lora=lora, factor_storage="int8" if int8_factors else "float",
                       version=version or spec.version,
                       provenance={**spec.provenance, "lora_from_full": {"source": str(source), "rank": rank,
                                                                          "fp16": half, "int8_factors": int8_factors}})
    net, _ = build_network(out_spec)
    tuned_state = tuned.state_dict()
    energies = []
    with torch.no_grad():
        for name, module in net.encoder.named_modules():
            if not hasattr(module, "lora_A") or "default" not in module.lora_A:
                continue
            plain = "encoder." + name.replace("base_model.model.", "", 1)
            target = tuned_state[plain + ".weight"].float()
            delta = target - module.base_layer.weight.float()
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            root = s[:rank].sqrt()
            module.lora_B["default"].weight.copy_(u[:, :rank] * root)
            module.lora_A["default"].weight.copy_(root[:, None] * vh[:rank])
            total = float((s ** 2).sum())
            energies.append(float((s[:rank] ** 2).sum()) / total if total else 1.0)
        for name, param in net.named_parameters():
            plain = name.replace("base_model.model.", "", 1).replace(".base_layer.", ".")
            if "lora_" in name or not any(part in name for part in KEPT_WHOLE):
                continue
            if plain not in tuned_state:
                raise ModelError(f"{source}: no fine-tuned weight for {plain}")
            param.copy_(tuned_state[plain])
            param.requires_grad = True  # saved with the adapter (save_model keeps trainable weights)
    save_model(net.half() if half else net, out_spec, output)
    return {"rank": rank, "layers": len(energies), "kept_energy_min": round(min(energies), 4),
            "kept_energy_mean": round(sum(energies) / len(energies), 4)}
