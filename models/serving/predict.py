"""Plain batched prediction used by training-time validation and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from models.serving.batching import encode, encode_pairs, length_sorted_batches, pad, pool_mask


def predict_probs(model, tokenizer, texts: Sequence[str], max_length: int,
                  batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (topic, sentiment) for every text, in input order."""
    topic, sentiment = predict_logits(model, tokenizer, texts, max_length, batch_size)
    return topic.softmax(-1), sentiment.softmax(-1)


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: Sequence[str], max_length: int,
                   batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (topic, sentiment) for every text, in input order (fp32, on the CPU), after the
    model's own temperatures."""
    ids = encode(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    topic = torch.zeros((len(texts), model.topic_head.out_features))
    sentiment = torch.zeros((len(texts), model.sentiment_head.out_features))
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        input_ids, mask = pad([ids[i] for i in batch], tokenizer.pad_token_id)
        t_logits, s_logits = model(input_ids.to(device), mask.to(device))
        t_logits, s_logits = t_logits.cpu(), s_logits.cpu()
        index = torch.tensor(batch)
        topic[index] = t_logits.float()
        sentiment[index] = s_logits.float()
    return topic, sentiment


def predict_labels(model, tokenizer, texts: Sequence[str], task: str, max_length: int) -> list[int]:
    topic, sentiment = predict_probs(model, tokenizer, texts, max_length)
    return (topic if task == "topic" else sentiment).argmax(-1).tolist()


@torch.inference_mode()
def predict_entity_logits(model, tokenizer, texts: Sequence[str], entities: Sequence[str], max_length: int,
                          batch_size: int = 128) -> torch.Tensor:
    """Entity-head logits (after its temperature) for every (text, entity) pair, in input order."""
    if model.entity_head is None:
        raise ValueError("this model has no entity head")
    ids, pools = encode_pairs(tokenizer, texts, entities, max_length)
    return entity_logits(model, ids, pools, tokenizer.pad_token_id, batch_size)


@torch.inference_mode()
def entity_logits(model, ids: Sequence[Sequence[int]], pools: Sequence[Sequence[int]], pad_id: int,
                  batch_size: int = 128) -> torch.Tensor:
    """Entity-head logits (after its temperature, fp32 on the CPU) of pairs encoded by
    ``encode_pairs``, in input order, through a torch model."""
    device = next(model.parameters()).device
    out = torch.zeros((len(ids), model.entity_head.out_features))
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        input_ids, mask = pad([ids[i] for i in batch], pad_id)
        pooled = torch.from_numpy(pool_mask([pools[i] for i in batch], input_ids.shape[1]))
        out[torch.tensor(batch)] = model.forward_all(input_ids.to(device), mask.to(device),
                                                     pooled.to(device))[2].cpu().float()
    return out
