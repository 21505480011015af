"""A headline as the model reads it: the same cleaning in training and in serving."""

from __future__ import annotations

import html
import re

_URL = re.compile(r"https?://\S+|www\.\S+")
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Normalise a headline for the model: drop links (shortened links carry no meaning),
    unescape HTML character references (``html.unescape``: named and numeric), fold white
    space."""
    return _SPACE.sub(" ", html.unescape(_URL.sub(" ", text))).strip()


def tag_texts(tag: str, texts) -> list[str]:
    """``texts`` with a source tag before each (models/training/sources.py): how a tagged source is read."""
    return [f"{tag} {t}" for t in texts]
