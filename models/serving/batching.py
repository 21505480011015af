"""Tokenisation and length-bucketed batching shared by training and inference."""

from __future__ import annotations

import random
from collections.abc import Sequence

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # serving a bundle (models/serving/bundle.py) runs without torch
    import numpy as np
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


MARK_OPEN, MARK_CLOSE = "<< ", " >>"  # around the entity's mention in the text the entity head reads


def mark_entity(text: str, entity: str) -> tuple[str, tuple[int, int] | None]:
    """``text`` with the entity's first mention (case-insensitive; a ticker's ``$`` optional)
    between markers, and the mention's character span in the marked text (None: not found)."""
    folded = text.casefold()
    for name in dict.fromkeys((entity, entity.lstrip("$"))):
        at = folded.find(name.casefold()) if name else -1
        if at >= 0:
            end = at + len(name)
            marked = text[:at] + MARK_OPEN + text[at:end] + MARK_CLOSE + text[end:]
            return marked, (at + len(MARK_OPEN), end + len(MARK_OPEN))
    return text, None


def encode_pairs(tokenizer: "PreTrainedTokenizerBase", texts: Sequence[str], entities: Sequence[str],
                 max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """How the entity head reads the sentiment toward ``entities[i]`` in ``texts[i]``: token ids of
    "text [SEP] entity", the entity's mention in the text between ``<< >>`` markers, cut to
    ``max_length`` in the text, never in the entity; and the positions the head pools — the
    mention's tokens, or the appended name's where the text does not spell the entity (or its
    mention was cut off)."""
    cleaned = [clean_text(t[: max_length * 16]) if t else "" for t in texts]
    names = [clean_text(e[:200]) if e else "" for e in entities]
    marked = [mark_entity(t, n) for t, n in zip(cleaned, names)]
    encoded = tokenizer([m for m, _ in marked], names, truncation="only_first", max_length=max_length,
                        padding=False, return_offsets_mapping=True)
    pools = []
    for i, (_, span) in enumerate(marked):
        sequence, offsets = encoded.sequence_ids(i), encoded["offset_mapping"][i]
        inside = [k for k, (seq, (a, b)) in enumerate(zip(sequence, offsets))
                  if span is not None and seq == 0 and b > a and a >= span[0] and b <= span[1]]
        pools.append(inside or [k for k, seq in enumerate(sequence) if seq == 1] or [0])
    return encoded["input_ids"], pools


def pool_mask(pools: Sequence[Sequence[int]], width: int) -> "np.ndarray":
    """A (batch, width) int64 0/1 mask of the positions each row pools (numpy: the bundle serves
    without torch)."""
    import numpy as np

    mask = np.zeros((len(pools), width), dtype=np.int64)
    for row, positions in enumerate(pools):
        mask[row, list(positions)] = 1
    return mask


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
