"""Small helpers the model tests share."""

from __future__ import annotations

import torch


def kl_per_row(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row, written out."""
    return (p * (p.log() - q.log())).sum(-1)


def save_full_copy(lora_model_dir, directory):
    """Save ``lora_model_dir`` as a full fine-tune in ``directory`` (its adapter merged, every weight
    stored): the input the rank cut (``lora_from_full``) takes. Returns ``directory``."""
    from dataclasses import replace

    from models.serving.artefact import build_network, read_spec, save_model
    from models.training.train import _warm_start

    full_spec = replace(read_spec(lora_model_dir), finetune="full")
    full, _ = build_network(full_spec)
    _warm_start(full, full_spec, str(lora_model_dir))
    save_model(full, full_spec, directory)
    return directory
