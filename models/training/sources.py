"""Named labelled data sources and how training samples them.

A source is written ``NAME=PATH`` (or just ``PATH``, named after the file's stem). A file with
a ``source`` column splits into one source per value, named ``NAME/VALUE`` (``news/sentfin``,
``news/wsj`` …), so that sampling and validation see each publisher on its own.

Sampling (``mix``) decides how many examples of each source one epoch draws, keeping the
epoch as long as all sources together:

- ``proportional`` — every example once (the sources simply concatenated);
- ``sqrt`` — source *i* gets a share ∝ √nᵢ: small sources are drawn several times an epoch,
  large ones partly, so a 112-row source is not drowned by a 9,500-row one (temperature
  sampling as used for multilingual corpora);
- ``equal`` — every source the same share.

A source drawn more often than it has rows repeats whole shuffled passes before any row
repeats a third time; one drawn less often takes a fresh random subset each epoch.

An *unlabelled* source (``--unlabelled NAME=PATH``: a file with a ``text`` column, or the
``title`` column of a recorded feed) joins the sentiment sources with no labels: its rows
train on a teacher's soft targets alone (models/training/distill.py), so a larger teacher's reading of
many real headlines carries into the student. Empty and repeated texts are dropped, and so is
every text that is also a validation row: validation stays unseen.

A *source tag* (``--source-tag tweets=tweet:``) is text put before every row of a sentiment
source, in training and in validation (a validation source of the same name), and recorded in
the model. Sources whose labels follow different conventions — tweets of news accounts beside
news headlines and newswire sentences — then train one model without pulling each other's
reading: the untagged sources define how untagged text (every served headline) is read.
``moodwire evaluate --read-as tweets`` reads a file as the tagged source.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.training.data import LabelledSet, load_labelled, read_frame
from moodwire.errors import DataError
from models.serving.labels import LabelMap

MIXES = ("sqrt", "proportional", "equal")
NO_LABEL = -100  # the label of an unlabelled row (torch's ignore_index)


@dataclass(frozen=True)
class SourceSpec:
    """One ``NAME=PATH`` argument."""

    name: str
    path: str

    @classmethod
    def parse(cls, text: str, option: str = "--sentiment-train") -> "SourceSpec":
        name, sep, path = text.partition("=")
        if not sep:
            name, path = Path(text).stem, text
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise DataError(f"{option} {text!r}: write NAME=PATH (for example news=data/news/news_train.csv)")
        if "/" in name:
            raise DataError(f"{option} {text!r}: a source name may not contain '/' (it separates sub-sources)")
        return cls(name, path)

    def __str__(self) -> str:
        return f"{self.name}={self.path}"


def parse_sources(values: str | Sequence[str], option: str) -> list[SourceSpec]:
    """Parse a list of ``NAME=PATH`` (a single string is one source); names must be unique."""
    items = [values] if isinstance(values, str) else list(values)
    if not items:
        raise DataError(f"{option}: give at least one NAME=PATH")
    specs = [SourceSpec.parse(v, option) for v in items]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise DataError(f"{option}: the source name {spec.name!r} is given twice")
        seen.add(spec.name)
    return specs


def refuse_overlap(train: Sequence[SourceSpec], valid: Sequence[SourceSpec]) -> None:
    """A validation file is never trained on: refuse a run that names one file for both."""
    held_out = {Path(v.path).resolve(): v for v in valid}
    for spec in train:
        clash = held_out.get(Path(spec.path).resolve())
        if clash is not None:
            raise DataError(f"training source {spec} is also the validation source {clash}; "
                            "a validation file is never trained on")


def parse_tags(values: Sequence[str], sources: Sequence[SourceSpec]) -> dict[str, str]:
    """``NAME=TAG`` options as ``{name: tag}``; each names a sentiment training source."""
    tags: dict[str, str] = {}
    names = {s.name for s in sources}
    for value in values:
        name, sep, tag = value.partition("=")
        name, tag = name.strip(), " ".join(tag.split())
        if not sep or not name or not tag:
            raise DataError(f"--source-tag {value!r}: write NAME=TAG (for example tweets=tweet:)")
        if name not in names:
            raise DataError(f"--source-tag {value!r}: {name!r} is not a sentiment training source "
                            f"(sources: {', '.join(sorted(names))})")
        if name in tags:
            raise DataError(f"--source-tag: the source {name!r} is tagged twice")
        tags[name] = tag
    if tags and set(tags) == names:
        raise DataError("--source-tag: leave at least one sentiment source untagged; untagged text "
                        "(every served headline) is read as the untagged sources are")
    return tags


def tag_sources(sets: dict[str, LabelledSet], tags: dict[str, str]) -> dict[str, LabelledSet]:
    """Each source's rows with its tag (by the name before any ``/``) put before the text."""
    out = {}
    for name, data in sets.items():
        tag = tags.get(name.split("/")[0])
        out[name] = data if tag is None else data.tagged(tag)
    return out


def load_sources(specs: Sequence[SourceSpec], label_map: LabelMap) -> dict[str, LabelledSet]:
    """Each source's rows, split by the file's ``source`` column where it has one."""
    out: dict[str, LabelledSet] = {}
    for spec in specs:
        data = load_labelled(spec.path, label_map)
        if data.groups is None:
            out[spec.name] = data
            continue
        for group in sorted(set(data.groups)):
            rows = [i for i, g in enumerate(data.groups) if g == group]
            out[f"{spec.name}/{group}"] = data.select(rows)
    return out


def epoch_counts(sizes: dict[str, int], mix: str) -> dict[str, int]:
    """How many examples of each source one epoch draws (the total stays sum(sizes))."""
    if mix not in MIXES:
        raise DataError(f"unknown sampling mix {mix!r}; expected one of: {', '.join(MIXES)}")
    total = sum(sizes.values())
    if mix == "proportional" or total == 0:
        return dict(sizes)
    power = 0.5 if mix == "sqrt" else 0.0
    weights = {name: (n ** power if n else 0.0) for name, n in sizes.items()}
    norm = sum(weights.values())
    counts = {name: int(round(total * w / norm)) for name, w in weights.items()}
    return {name: max(1, c) if sizes[name] else 0 for name, c in counts.items()}


def draw(size: int, count: int, rng: random.Random) -> list[int]:
    """``count`` row indices of a source with ``size`` rows: whole shuffled passes, then a subset."""
    rows: list[int] = []
    while count - len(rows) >= size > 0:
        passed = list(range(size))
        rng.shuffle(passed)
        rows.extend(passed)
    if size and count > len(rows):
        rows.extend(rng.sample(range(size), count - len(rows)))
    return rows


def load_unlabelled(specs: Sequence[SourceSpec], held_out: set[str]) -> dict[str, LabelledSet]:
    """Each unlabelled source's distinct texts (labels ``NO_LABEL``), less any text in ``held_out``."""
    out: dict[str, LabelledSet] = {}
    for spec in specs:
        frame = read_frame(Path(spec.path))
        column = "text" if "text" in frame.columns else "title" if "title" in frame.columns else None
        if column is None:
            raise DataError(f"--unlabelled {spec}: the file has no 'text' or 'title' column "
                            f"(columns: {', '.join(map(str, frame.columns))})")
        stripped = ("" if x is None or x != x else str(x).strip() for x in frame[column])  # x != x: NaN
        texts = list(dict.fromkeys(t for t in stripped if t and t not in held_out))
        if not texts:
            raise DataError(f"--unlabelled {spec}: no text is left (the file is empty or holds validation rows only)")
        out[spec.name] = LabelledSet("sentiment", texts, [NO_LABEL] * len(texts))
    return out
