"""Label sets of the two tasks and the mapping of user-supplied labels onto them."""

from __future__ import annotations

from dataclasses import dataclass

from moodwire.errors import DataError

TASKS = ("topic", "sentiment")

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

# The training data (tfns) numbers its classes 0 = bearish, 1 = bullish, 2 = neutral.
SENTIMENT_TRAINING_SCHEME: dict[int, str] = {0: "negative", 1: "positive", 2: "neutral"}
SENTIMENT_ALIASES: dict[str, str] = {
    "negative": "negative", "bearish": "negative", "neg": "negative",
    "neutral": "neutral", "neu": "neutral",
    "positive": "positive", "bullish": "positive", "pos": "positive",
}

# The 20 topic classes of tfnt, in the order of its classes.txt (index = label id).
TOPIC_LABELS: tuple[str, ...] = (
    "Analyst Update", "Fed | Central Banks", "Company | Product News",
    "Treasuries | Corporate Debt", "Dividend", "Earnings", "Energy | Oil", "Financials",
    "Currencies", "General News | Opinion", "Gold | Metals | Materials", "IPO",
    "Legal | Regulation", "M&A | Investments", "Macro", "Markets", "Politics",
    "Personnel Change", "Stock Commentary", "Stock Movement",
)


@dataclass(frozen=True)
class LabelMap:
    """Names of one task's classes, in the order of the model's output units."""

    task: str
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, raw: object, *, where: str = "") -> int:
        """Map a label given as integer id or name (any case) onto an output index."""
        if isinstance(raw, bool):
            raise DataError(f"{where}unknown {self.task} label {raw!r}")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, int):
            return self._index_of_int(raw, where)
        text = str(raw).strip()
        if text.lstrip("-").isdigit():
            return self._index_of_int(int(text), where)
        return self._index_of_name(text, where)

    def _index_of_int(self, value: int, where: str) -> int:
        if self.task == "sentiment" and self.names == SENTIMENT_LABELS:
            if value in SENTIMENT_TRAINING_SCHEME:
                return self.names.index(SENTIMENT_TRAINING_SCHEME[value])
        elif 0 <= value < len(self.names):
            return value
        raise DataError(
            f"{where}unknown {self.task} label {value}: integer labels must be "
            + ("0 (bearish), 1 (bullish) or 2 (neutral)" if self.task == "sentiment"
               else f"between 0 and {len(self.names) - 1}")
        )

    def _index_of_name(self, text: str, where: str) -> int:
        folded = text.casefold()
        if self.task == "sentiment" and folded in SENTIMENT_ALIASES:
            text = SENTIMENT_ALIASES[folded]
            folded = text
        for i, name in enumerate(self.names):
            if name.casefold() == folded or name.replace(" | ", " / ").casefold() == folded:
                return i
        raise DataError(
            f"{where}unknown {self.task} label {text!r}; expected one of: "
            + ", ".join(self.names)
        )


def default_label_map(task: str) -> LabelMap:
    if task == "topic":
        return LabelMap("topic", TOPIC_LABELS)
    if task == "sentiment":
        return LabelMap("sentiment", SENTIMENT_LABELS)
    raise DataError(f"unknown task {task!r}; expected one of: {', '.join(TASKS)}")
