"""Knowledge distillation in training (``moodwire train --teacher TARGETS=MODEL``).

A teacher is a saved Moodwire model with the same label sets; its base may be another, larger
encoder (a model trained with ``--base DIR``), read with its own tokenizer and maximum length.
Before training it predicts every training row of its targets once (``topic``, or a sentiment
source by its name: ``tweets``, ``news`` for all of ``news/*``, or one part such as
``news/wsj``), after its own calibration temperatures; those probabilities, softened by the
distillation temperature T, are the soft targets. A batch's loss is then

    (1 − α·f) · CE(hard labels) + α·f · T² · KL(teacher ‖ student at T)

where f is the share of the batch's rows that have a soft target (rows of targets no teacher
covers train on their labels alone). Several teachers may cover different targets, e.g. a
tweets specialist for ``topic,tweets`` and the model being continued for ``news`` — the
"learning without forgetting" use: a new source is learned while each old one keeps the
answers of the model that knew it best.

Rows of an unlabelled source (``--unlabelled``, models/training/sources.py) have no label; the teacher
named for that source gives their only target, at full weight. This is how a teacher's reading
of many real headlines — more than were ever labelled — carries into the student.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from moodwire.errors import DataError, ModelError


@dataclass(frozen=True)
class TeacherSpec:
    """One ``--teacher TARGET[,TARGET…]=MODEL`` argument."""

    targets: tuple[str, ...]
    model: str

    @classmethod
    def parse(cls, text: str) -> "TeacherSpec":
        names, sep, model = text.partition("=")
        targets = tuple(t.strip() for t in names.split(",") if t.strip())
        if not sep or not targets or not model.strip():
            raise DataError(f"--teacher {text!r}: write TARGETS=MODEL, for example topic,tweets=runs/tweets-model")
        if not Path(model.strip()).is_dir():
            raise DataError(f"--teacher {text!r}: {model.strip()} is not a model directory")
        return cls(targets, model.strip())

    def __str__(self) -> str:
        return f"{','.join(self.targets)}={self.model}"


def parse_teachers(values: Sequence[str]) -> list[TeacherSpec]:
    """Teachers of distinct targets; a target named twice is refused."""
    teachers = [TeacherSpec.parse(v) for v in values]
    seen: dict[str, str] = {}
    for teacher in teachers:
        for target in teacher.targets:
            if target in seen:
                raise DataError(f"--teacher: {target!r} has two teachers ({seen[target]} and {teacher.model}); "
                                "give each target one")
            seen[target] = teacher.model
    return teachers


def check_settings(alpha: float, temperature: float) -> None:
    if not 0.0 < alpha <= 1.0:
        raise DataError(f"--distill-alpha {alpha}: give a weight in (0, 1]")
    if temperature <= 0.0:
        raise DataError(f"--distill-temperature {temperature}: give a temperature above 0")


def covers(target: str, source: str) -> bool:
    """Whether a teacher target names this task or sentiment source (``news`` covers ``news/wsj``)."""
    return source == target or source.startswith(target + "/")


# Files of a model directory that do not change what it predicts (``moodwire evaluate`` writes them).
_NOT_PREDICTIVE = {"README.md", "evaluation.json"}


def model_digest(model_dir: str) -> str:
    """SHA-256 over a model directory's files that decide its predictions (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(model_dir).rglob("*") if p.is_file() and p.name not in _NOT_PREDICTIVE):
        digest.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class TeacherCache:
    """Teachers' logits on lists of texts, saved under ``directory`` (``--teacher-cache``) by the
    teacher's digest, the task and the texts, so a sweep of runs over the same data pays for the
    teacher's predictions once. Without a directory nothing is kept."""

    def __init__(self, directory: str | None):
        self.directory = Path(directory) if directory else None
        if self.directory is not None and self.directory.exists() and not self.directory.is_dir():
            raise DataError(f"--teacher-cache {directory}: not a directory; name a directory to keep teachers' "
                            "predictions in")

    def _path(self, digest: str, task: str, texts: Sequence[str]) -> Path:
        key = hashlib.sha256("\0".join([digest, task, *texts]).encode()).hexdigest()
        return self.directory / f"{key}.pt"

    def get(self, digest: str, task: str, texts: Sequence[str]) -> torch.Tensor | None:
        if self.directory is None:
            return None
        path = self._path(digest, task, texts)
        if not path.exists():
            return None
        logits = torch.load(path, weights_only=True)
        return logits if logits.shape[0] == len(texts) else None

    def put(self, digest: str, task: str, texts: Sequence[str], logits: torch.Tensor) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(digest, task, texts)
        partial = path.with_suffix(".part")
        torch.save(logits, partial)
        partial.replace(path)  # a reader never sees half a file


def soft_targets(teachers: Sequence[TeacherSpec], spec, texts: dict[str, list[str]],
                 row_sources: dict[str, list[str]], temperature: float,
                 cache: TeacherCache | None = None) -> dict[str, torch.Tensor | None]:
    """Per task (``topic``, ``sentiment``): a (rows × classes) tensor of the teachers' softened
    probabilities, NaN on rows no teacher covers; None where no row is covered. ``row_sources``
    names each row's target (``topic`` for every topic row; the sentiment source otherwise)."""
    from models.serving.artefact import load_model, read_spec
    from models.serving.predict import predict_logits

    cache = cache or TeacherCache(None)
    known = set(row_sources["topic"]) | set(row_sources["sentiment"])
    for teacher in teachers:
        for target in teacher.targets:
            if not any(covers(target, s) for s in known):
                raise DataError(f"--teacher {teacher}: no training rows are {target!r} "
                                f"(targets: topic or a sentiment source: {sorted(set(row_sources['sentiment']))})")
    classes = {"topic": len(spec.topic_labels), "sentiment": len(spec.sentiment_labels)}
    out: dict[str, torch.Tensor | None] = {t: None for t in classes}
    for teacher in teachers:
        saved = read_spec(teacher.model)
        for name in ("topic_labels", "sentiment_labels"):  # its own base and tokenizer may differ
            if getattr(saved, name) != getattr(spec, name):
                raise ModelError(f"--teacher {teacher}: its {name} is {getattr(saved, name)!r}, this run's is "
                                 f"{getattr(spec, name)!r}")
        digest = model_digest(teacher.model) if cache.directory is not None else ""
        loaded = None
        for task in classes:
            rows = [i for i, s in enumerate(row_sources[task]) if any(covers(t, s) for t in teacher.targets)]
            if not rows:
                continue
            chosen = [texts[task][i] for i in rows]
            logits = cache.get(digest, task, chosen)
            if logits is None:
                loaded = loaded or load_model(teacher.model)
                both = predict_logits(loaded[0], loaded[1], chosen, saved.max_length)
                logits = both[0] if task == "topic" else both[1]
                cache.put(digest, task, chosen, logits)
            probs = logits.div(temperature).softmax(-1)
            if out[task] is None:
                out[task] = torch.full((len(texts[task]), classes[task]), float("nan"))
            out[task][torch.tensor(rows)] = probs
    return out


def distilled_loss(hard_loss: torch.Tensor | None, logits: torch.Tensor, soft: torch.Tensor | None,
                   alpha: float, temperature: float, labelled: torch.Tensor | None = None) -> torch.Tensor:
    """The batch's loss: its hard-label loss mixed with the KL to the rows' soft targets.

    ``labelled`` marks the rows with a label (None: all); ``hard_loss`` is their mean loss, or
    None when no row has one. A labelled row with a soft target weighs (1 − α) on its label and
    α on the teacher; an unlabelled row (an ``--unlabelled`` source) learns from the teacher alone.
    """
    rows = logits.shape[0]
    labelled = torch.ones(rows, dtype=torch.bool, device=logits.device) if labelled is None else labelled
    have = torch.zeros_like(labelled) if soft is None else ~torch.isnan(soft[:, 0])
    if bool((~labelled & ~have).any()):
        raise ModelError("a training row has neither a label nor a teacher's soft target")
    if not bool(have.any()):
        return hard_loss
    both, alone = int((have & labelled).sum()), int((have & ~labelled).sum())
    soft_weight = (alpha * both + alone) / rows
    kl = F.kl_div(F.log_softmax(logits[have] / temperature, -1), soft[have], reduction="batchmean")
    distilled = soft_weight * kl * temperature ** 2
    if hard_loss is None:
        return distilled
    return (int(labelled.sum()) - alpha * both) / rows * hard_loss + distilled
