"""Tokenisation and length-bucketed batching shared by training and inference."""

from __future__ import annotations

import random
from collections.abc import Sequence

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # serving a bundle (models/serving/bundle.py) runs without torch
    import torch
    from transformers import PreTrainedTokenizerBase

from models.serving.text import clean_text


def encode(tokenizer: "PreTrainedTokenizerBase", texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each cleaned text, truncated to ``max_length`` (no padding).

    Very long inputs are cut to a bounded number of characters first so that a
    100 KB text costs no more tokenizer time than a long headline.
    """
    cleaned = [clean_text(t[: max_length * 16]) if t else "" for t in texts]
    return tokenizer(cleaned, truncation=True, max_length=max_length, padding=False)["input_ids"]


def encode_pairs(tokenizer: "PreTrainedTokenizerBase", texts: Sequence[str], entities: Sequence[str],
                 max_length: int) -> list[list[int]]:
    """Token ids of each pair "text [SEP] entity" (how the entity head reads the sentiment toward
    ``entity`` in ``text``), truncated to ``max_length`` by cutting the text, never the entity."""
    cleaned = [clean_text(t[: max_length * 16]) if t else "" for t in texts]
    names = [clean_text(e[:200]) if e else "" for e in entities]
    return tokenizer(cleaned, names, truncation="only_first", max_length=max_length, padding=False)["input_ids"]


def pad(batch_ids: Sequence[Sequence[int]], pad_id: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Pad to the longest member of the batch only."""
    import torch

    width = max(len(ids) for ids in batch_ids)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, ids in enumerate(batch_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), for inference."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def shuffled_bucket_batches(lengths: Sequence[int], batch_size: int, rng: random.Random,
                            pool: int = 50) -> list[list[int]]:
    """Training batches: shuffle, sort within pools of ``pool`` batches by length, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
