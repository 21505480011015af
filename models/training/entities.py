"""Entity-level sentiment data: one row per (text, entity) with the sentiment toward that entity.

A file has the columns ``text,entity,label`` and optionally ``start,end`` (the entity's span in
the text; empty where the text names it otherwise) and ``source``. The entity head reads the
pair "text [SEP] entity" (``models.serving.batching.encode_pairs``), so a row whose span is
empty is read like any other: by the entity's name beside the text.

Subsets reported by ``moodwire evaluate --task entity``: ``disagree`` — the rows of texts whose
entities carry different labels (a reader that gives every entity its text's sentiment must
miss at least one of them); ``single`` — texts that name one entity.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from models.serving.labels import LabelMap
from models.training.data import read_frame
from moodwire.errors import DataError

COLUMNS = ("text", "entity", "label")


@dataclass(frozen=True)
class EntitySet:
    """(text, entity) pairs with label indices, each row's source and subset flags."""

    texts: list[str]
    entities: list[str]
    labels: list[int]
    groups: list[str]
    disagree: list[bool]
    single: list[bool]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, n: int) -> "EntitySet":
        return self.select(range(min(n, len(self.texts))))

    def select(self, rows) -> "EntitySet":
        rows = list(rows)
        return EntitySet(*([getattr(self, f)[i] for i in rows] for f in
                           ("texts", "entities", "labels", "groups", "disagree", "single")))


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""


def load_entities(path: str | Path, label_map: LabelMap) -> EntitySet:
    """Read an entity-level file; DataError names the file, the row and what to fix."""
    path = Path(path)
    frame = read_frame(path)
    if frame.empty:
        raise DataError(f"data file {path} has no rows")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"data file {path} has no {missing[0]!r} column (an entity file needs text, entity and "
                        f"label; columns: {', '.join(map(str, frame.columns))})")
    texts, entities, labels, groups = [], [], [], []
    for row, (text, entity, label) in enumerate(zip(frame["text"], frame["entity"], frame["label"]), start=2):
        if _blank(text):
            raise DataError(f"{path}: row {row} has an empty text")
        if _blank(entity):
            raise DataError(f"{path}: row {row} has an empty entity")
        if _blank(label):
            raise DataError(f"{path}: row {row} has an empty label")
        labels.append(label_map.index(label, where=f"{path}: row {row}: "))
        texts.append(str(text))
        entities.append(str(entity).strip())
    if "source" in frame.columns:
        groups = [str(g).strip() or "unnamed" for g in frame["source"]]
    else:
        groups = ["all"] * len(texts)
    by_text: dict[str, set[int]] = defaultdict(set)
    named: dict[str, int] = defaultdict(int)
    for text, label in zip(texts, labels):
        by_text[text].add(label)
        named[text] += 1
    disagree = [len(by_text[t]) > 1 for t in texts]
    single = [named[t] == 1 for t in texts]
    return EntitySet(texts, entities, labels, groups, disagree, single)


def composed(rows: EntitySet, n: int, seed: int = 7, max_chars: int = 120) -> EntitySet:
    """``rows`` with ``n`` composed texts added (two rows each): two texts that name one entity
    each, with different labels, joined by "; " in random order, each entity keeping its label.
    Only texts that spell their entity (case aside), are at most ``max_chars`` long and do not
    spell the other's entity are drawn, so each marked mention is the one its label is about: a
    head that reads only the text's mood is wrong on one of the two rows of every composed text."""
    pool = [i for i in range(len(rows)) if rows.single[i] and len(rows.texts[i]) <= max_chars
            and rows.entities[i].casefold() in rows.texts[i].casefold()]
    by_label: dict[int, list[int]] = defaultdict(list)
    for i in pool:
        by_label[rows.labels[i]].append(i)
    if n <= 0 or len(by_label) < 2:
        return rows
    rng, labels = random.Random(seed), sorted(by_label)
    texts, entities, out_labels, seen = [], [], [], set()
    for _ in range(n * 20):  # draws that clash (an entity spelled in the other text) are skipped
        if len(texts) >= 2 * n:
            break
        la, lb = rng.sample(labels, 2)
        a, b = rng.choice(by_label[la]), rng.choice(by_label[lb])
        if (rows.entities[a].casefold() in rows.texts[b].casefold()
                or rows.entities[b].casefold() in rows.texts[a].casefold() or (a, b) in seen):
            continue
        seen.add((a, b))
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        text = rows.texts[first].rstrip(" .") + "; " + rows.texts[second]
        for i in (a, b):
            texts.append(text)
            entities.append(rows.entities[i])
            out_labels.append(rows.labels[i])
    k = len(texts)
    return EntitySet(rows.texts + texts, rows.entities + entities, rows.labels + out_labels,
                     rows.groups + ["composed"] * k, rows.disagree + [True] * k, rows.single + [False] * k)
