"""Loading labelled text files (CSV or JSONL with ``text`` and ``label`` columns)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from moodwire.errors import DataError
from models.serving.labels import LabelMap
from models.serving.text import tag_texts


@dataclass(frozen=True)
class LabelledSet:
    """Texts with label indices of one task, plus optional continuous scores and source names."""

    task: str
    texts: list[str]
    labels: list[int]
    scores: list[float] | None = None
    groups: list[str] | None = None  # the file's ``source`` column, when it has one

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, n: int) -> "LabelledSet":
        return self.select(range(min(n, len(self.texts))))

    def tagged(self, tag: str) -> "LabelledSet":
        """The same rows, each text read with the source tag ``tag``."""
        return LabelledSet(self.task, tag_texts(tag, self.texts), self.labels, self.scores, self.groups)

    def select(self, rows) -> "LabelledSet":
        """The given rows, in the given order."""
        rows = list(rows)
        pick = (lambda values: None if values is None else [values[i] for i in rows])
        return LabelledSet(self.task, pick(self.texts), pick(self.labels), pick(self.scores), pick(self.groups))


def read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            rows = []
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            return pd.DataFrame(rows)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",",
                               dtype={"text": str}, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not valid CSV: {exc}") from None
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .jsonl")


def load_labelled(path: str | Path, label_map: LabelMap) -> LabelledSet:
    """Read a labelled file and map its labels onto ``label_map``.

    Raises DataError naming the file, the row and the problem for a missing
    column, an unknown label, an empty text column or an empty file.
    """
    path = Path(path)
    frame = read_frame(path)
    if frame.empty:
        raise DataError(f"data file {path} has no rows")
    for column in ("text", "label"):
        if column not in frame.columns:
            raise DataError(
                f"data file {path} has no {column!r} column (columns: {', '.join(map(str, frame.columns))})")
    texts: list[str] = []
    labels: list[int] = []
    for row, (text, label) in enumerate(zip(frame["text"], frame["label"]), start=2):
        if label is None or (isinstance(label, float) and label != label) or str(label).strip() == "":
            raise DataError(f"{path}: row {row} has an empty label")
        labels.append(label_map.index(label, where=f"{path}: row {row}: "))
        texts.append("" if text is None else str(text))
    scores = None
    if "score" in frame.columns:
        try:
            scores = [float(s) for s in frame["score"]]
        except (TypeError, ValueError):
            raise DataError(f"{path}: the 'score' column must hold numbers") from None
    groups = None
    if "source" in frame.columns:
        groups = [str(g).strip() or "unnamed" for g in frame["source"]]
    return LabelledSet(label_map.task, texts, labels, scores, groups)
