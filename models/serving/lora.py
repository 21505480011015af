"""A LoRA adapter's shape (no torch here: ``moodwire train`` builds its options from it)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoraSettings:
    r: int = field(default=16, metadata={"help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling (the update is scaled by alpha / r)."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA path."})
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"],
                                      metadata={"help": "Encoder modules that get adapters; repeat for several "
                                                "[default: query, key, value, dense]."})
