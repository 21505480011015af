"""Multi-task fine-tuning: ``train(cfg) -> metrics``.

Both tasks share one encoder. Every batch holds texts of one task; batches of
the two tasks are interleaved at random. Sentiment may come from several named
sources, drawn each epoch by the ``mix`` scheme (models/training/sources.py); validation
reports each source, and the best epoch is chosen by selection_score in models/training/validation.py.
After training, one temperature per head is fitted on the validation rows
(models/training/calibration.py) and stored in the model description. Training is seeded, shows a progress
bar, checkpoints every ``checkpoint_every`` steps and at each epoch end, resumes
from the newest checkpoint, and stops early when the validation figure stops
improving. The best weights (by validation) are what gets saved. Teachers
(``--teacher``, models/training/distill.py) add soft targets to the rows they cover; unlabelled
sources (``--unlabelled``) add rows that learn from a teacher alone.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup, set_seed

from models.serving.artefact import (LoraSettings, ModelSpec, build_network, load_model, read_spec, read_weights, save_model,
                             trainable_state)
from models.serving.batching import encode, encode_pairs, pad, pool_mask, shuffled_bucket_batches
from models.training.config import TrainConfig
from models.training.data import LabelledSet, load_labelled
from models.training.entities import composed, load_entities
from models.training.distill import TeacherCache, check_settings, distilled_loss, parse_teachers, soft_targets
from models.serving.engine import pick_device
from moodwire.errors import DataError, ModelError
from models.serving.labels import LabelMap
from models.training.sources import (NO_LABEL, draw, epoch_counts, load_sources, load_unlabelled, parse_sources, parse_tags,
                            refuse_overlap, tag_sources)
from models.serving.predict import predict_entity_logits
from models.training.validation import (calibrate, calibrate_entity, entity_metrics, selection_score, validation_logits,
                                        validation_metrics)


def class_weights(labels: list[int], n: int, scheme: str) -> torch.Tensor | None:
    if scheme == "none":
        return None
    counts = np.bincount(labels, minlength=n).astype(float)
    counts[counts == 0] = 1.0
    weights = (counts.sum() / counts) ** (0.5 if scheme == "sqrt" else 1.0)
    weights = weights / (weights * counts).sum() * counts.sum()
    return torch.tensor(weights, dtype=torch.float32)



def _load_sets(cfg: TrainConfig, spec: ModelSpec, teachers: list, train_specs: list) -> dict:
    """``{"topic": {"train", "valid"}, "sentiment": {"train": {source: set}, "valid": {source: set}}}``,
    the sentiment sources (``train_specs``: the parsed ``--sentiment-train``) read with ``spec.source_tags``."""
    valid_specs = parse_sources(cfg.sentiment_valid, "--sentiment-valid")
    refuse_overlap(train_specs, valid_specs)
    topic_map = LabelMap("topic", tuple(spec.topic_labels))
    sentiment_map = LabelMap("sentiment", tuple(spec.sentiment_labels))
    sets = {
        "topic": {"train": load_labelled(cfg.topic_train, topic_map),
                  "valid": load_labelled(cfg.topic_valid, topic_map)},
        "sentiment": {"train": load_sources(train_specs, sentiment_map),
                      "valid": load_sources(valid_specs, sentiment_map)},
    }
    valid_texts = sets["topic"]["valid"].texts + [t for d in sets["sentiment"]["valid"].values() for t in d.texts]
    held_out = {t.strip() for t in valid_texts}  # compared as the unlabelled texts are kept: stripped
    sets["sentiment"]["unlabelled"] = load_unlabelled(_unlabelled_specs(cfg, train_specs, teachers), held_out)
    for split in ("train", "valid"):
        sets["sentiment"][split] = tag_sources(sets["sentiment"][split], spec.source_tags)
    if cfg.entity_train:
        if not cfg.entity_valid:
            raise DataError("--entity-train needs --entity-valid (the epoch is chosen on both)")
        sets["entity"] = {"train": composed(load_entities(cfg.entity_train, sentiment_map), cfg.entity_compose,
                                            cfg.seed),
                          "valid": load_entities(cfg.entity_valid, sentiment_map)}
        overlap = set(sets["entity"]["train"].texts) & set(sets["entity"]["valid"].texts)
        if overlap:
            raise DataError(f"--entity-train and --entity-valid share {len(overlap)} texts (for example "
                            f"{sorted(overlap)[0][:60]!r}); keep validation texts out of training")
    if cfg.limit:
        if "entity" in sets:
            sets["entity"] = {s: d.subset(cfg.limit) for s, d in sets["entity"].items()}
        sets["topic"] = {s: d.subset(cfg.limit) for s, d in sets["topic"].items()}
        sets["sentiment"] = {s: {n: d.subset(cfg.limit) for n, d in v.items()} for s, v in sets["sentiment"].items()}
    return sets


def _unlabelled_specs(cfg: TrainConfig, train_specs, teachers: list) -> list:
    """The ``--unlabelled`` sources; each needs its own name and a teacher that covers it."""
    if not cfg.unlabelled:
        return []
    specs = parse_sources(cfg.unlabelled, "--unlabelled")
    taken = {s.name for s in train_specs}
    covered = {t for teacher in teachers for t in teacher.targets}
    for spec in specs:
        if spec.name in taken or spec.name == "topic":
            raise DataError(f"--unlabelled {spec}: {spec.name!r} already names a training source; give it another name")
        if spec.name not in covered:
            raise DataError(f"--unlabelled {spec}: no --teacher covers {spec.name!r}; add it to a teacher's targets, "
                            f"for example --teacher {spec.name}=runs/teacher")
    return specs


def evaluate_sets(model, tokenizer, spec: ModelSpec, sets: dict) -> dict:
    """Validation figures (topic, every sentiment source) of the model as it is now."""
    topic, sentiment = validation_logits(model, tokenizer, spec, sets["topic"]["valid"], sets["sentiment"]["valid"])
    metrics = validation_metrics(spec, sets["topic"]["valid"], sets["sentiment"]["valid"], topic, sentiment)
    if "entity" in sets:
        metrics["entity"] = entity_metrics(model, tokenizer, spec, sets["entity"]["valid"])
    return metrics


def train(cfg: TrainConfig) -> dict:
    """Fine-tune, save the best model to ``cfg.output`` and return its validation metrics."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)  # Python, NumPy and torch (every CUDA device too)
    train_specs = parse_sources(cfg.sentiment_train, "--sentiment-train")
    spec = ModelSpec(base=cfg.base, finetune=cfg.finetune, lora=cfg.lora, max_length=cfg.max_length,
                     version=cfg.version, source_tags=parse_tags(cfg.source_tags, train_specs),
                     entity=bool(cfg.entity_train))
    teachers = parse_teachers(cfg.teacher)
    if teachers:
        check_settings(cfg.distill_alpha, cfg.distill_temperature)
    sets = _load_sets(cfg, spec, teachers, train_specs)
    model, tokenizer = build_network(spec)
    if cfg.init_from:
        _warm_start(model, spec, cfg.init_from)
    device = pick_device(cfg.device, setting="--device")
    model.to(device)
    sources = {**sets["sentiment"]["train"], **sets["sentiment"]["unlabelled"]}
    pooled = {"topic": sets["topic"]["train"],
              "sentiment": LabelledSet("sentiment", [x for d in sources.values() for x in d.texts],
                                       [y for d in sources.values() for y in d.labels])}
    encoded = {t: encode(tokenizer, pooled[t].texts, cfg.max_length) for t in pooled}
    labels = {t: pooled[t].labels for t in pooled}
    if "entity" in sets:
        entity_train = sets["entity"]["train"]
        encoded["entity"], entity_pools = encode_pairs(tokenizer, entity_train.texts, entity_train.entities,
                                                       cfg.max_length)
        labels["entity"] = entity_train.labels
    offsets, start = {}, 0
    for name, data in sources.items():
        offsets[name] = start
        start += len(data)
    soft = {"topic": None, "sentiment": None}
    if teachers:
        row_sources = {"topic": ["topic"] * len(pooled["topic"]),
                       "sentiment": [n for n, d in sources.items() for _ in range(len(d))]}
        soft = soft_targets(teachers, spec, {t: pooled[t].texts for t in pooled}, row_sources,
                            cfg.distill_temperature, TeacherCache(cfg.teacher_cache))
    counts = epoch_counts({n: len(d) for n, d in sources.items()}, cfg.mix)
    print(json.dumps({"sentiment_sources": {n: {"rows": len(d), "per_epoch": counts[n]} for n, d in sources.items()},
                      "mix": cfg.mix}), flush=True)
    loss_fns = {
        t: nn.CrossEntropyLoss(weight=_to(class_weights([y for y in labels[t] if y != NO_LABEL], n,
                                                        cfg.class_weighting), device),
                               label_smoothing=cfg.label_smoothing)
        for t, n in (("topic", len(spec.topic_labels)), ("sentiment", len(spec.sentiment_labels)),
                     ("entity", len(spec.sentiment_labels))) if t in labels
    }

    head_params = [p for n, p in model.named_parameters() if p.requires_grad and n.split(".")[0].endswith("head")]
    body_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.split(".")[0].endswith("head")]
    optimizer = torch.optim.AdamW([
        {"params": body_params, "lr": cfg.learning_rate()},
        {"params": head_params, "lr": max(cfg.head_lr, cfg.learning_rate())},
    ], weight_decay=cfg.weight_decay)

    def epoch_plan(epoch: int) -> list[tuple[str, list[int]]]:
        rng = random.Random(cfg.seed * 1000 + epoch)
        plan = [("topic", b) for b in shuffled_bucket_batches([len(x) for x in encoded["topic"]], cfg.batch_size, rng)]
        drawn = [offsets[n] + i for n in sources for i in draw(len(sources[n]), counts[n], rng)]
        for batch in shuffled_bucket_batches([len(encoded["sentiment"][i]) for i in drawn], cfg.batch_size, rng):
            plan.append(("sentiment", [drawn[j] for j in batch]))
        for _ in range(cfg.entity_passes if "entity" in encoded else 0):
            plan += [("entity", b) for b in shuffled_bucket_batches([len(x) for x in encoded["entity"]],
                                                                     cfg.batch_size, rng)]
        rng.shuffle(plan)
        return plan

    steps_per_epoch = len(epoch_plan(0))
    total_steps = steps_per_epoch * cfg.epochs
    warmup = max(1, int(total_steps * cfg.warmup_ratio))
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    ckpt_dir = Path(cfg.checkpoint_dir or Path(cfg.output).with_name(Path(cfg.output).name + ".ckpt"))
    state = {"epoch": 0, "step": 0, "best_score": -1.0, "best_state": None, "best_metrics": None,
             "bad_epochs": 0, "history": []}
    if cfg.resume and (ckpt_dir / "last.pt").is_file():
        saved = torch.load(ckpt_dir / "last.pt", weights_only=False, map_location="cpu")
        if saved["config"] != _config_key(cfg):
            raise ModelError(f"checkpoint {ckpt_dir / 'last.pt'} was made with other settings; "
                             "remove it or pass --no-resume")
        model.load_state_dict(saved["trainable"], strict=False)
        model.to(device)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        print(f"resumed from {ckpt_dir / 'last.pt'} at epoch {state['epoch'] + 1}, step {state['step']}", flush=True)

    def checkpoint() -> None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_dir / "last.pt.tmp"
        torch.save({"config": _config_key(cfg), "trainable": trainable_state(model),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(), "state": state}, tmp)
        tmp.replace(ckpt_dir / "last.pt")

    started = time.time()
    while state["epoch"] < cfg.epochs and state["bad_epochs"] <= cfg.patience:
        epoch = state["epoch"]
        plan = epoch_plan(epoch)
        model.train()
        bar = tqdm(total=len(plan), initial=state["step"], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress, mininterval=5)
        running = {"topic": [], "sentiment": [], "entity": []}
        for task, batch in plan[state["step"]:]:
            input_ids, mask = pad([encoded[task][i] for i in batch], tokenizer.pad_token_id)
            target = torch.tensor([labels[task][i] for i in batch]).to(device)
            pools = (torch.from_numpy(pool_mask([entity_pools[i] for i in batch], input_ids.shape[1])).to(device)
                     if task == "entity" else None)
            logits = model.forward_all(input_ids.to(device), mask.to(device), pools)[("topic", "sentiment", "entity").index(task)]
            labelled = target != NO_LABEL
            loss = loss_fns[task](logits[labelled], target[labelled]) if bool(labelled.any()) else None
            if soft.get(task) is not None:
                loss = distilled_loss(loss, logits, soft[task][batch].to(device), cfg.distill_alpha,
                                      cfg.distill_temperature, labelled)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            running[task].append(loss.item())
            bar.update(1)
            if state["step"] % 50 == 0:
                bar.set_postfix({t: f"{np.mean(v[-50:]):.3f}" for t, v in running.items() if v})
            if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                checkpoint()
        bar.close()
        model.eval()
        metrics = evaluate_sets(model, tokenizer, spec, sets)
        score = selection_score(metrics)
        entry = {"epoch": epoch + 1, "train_loss": {t: float(np.mean(v)) if v else None for t, v in running.items()},
                 "valid": metrics, "score": score, "elapsed_s": round(time.time() - started, 1)}
        state["history"].append(entry)
        print(json.dumps(entry), flush=True)
        if score > state["best_score"]:
            state.update(best_score=score, best_state=trainable_state(model), best_metrics=metrics, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["epoch"] += 1
        state["step"] = 0
        checkpoint()

    if state["best_state"] is None:
        raise ModelError("training ran no epoch; nothing to save")
    model.to("cpu")
    kept_metrics = state["best_metrics"]
    if cfg.keep == "last":  # the weights the last epoch ended with (e.g. an ingredient to average)
        kept_metrics = state["history"][-1]["valid"]
    else:
        model.load_state_dict(state["best_state"], strict=False)
    model.eval()
    if cfg.calibrate:
        topic_valid, sentiment_valid = sets["topic"]["valid"], sets["sentiment"]["valid"]
        logits = validation_logits(model, tokenizer, spec, topic_valid, sentiment_valid)
        spec.calibration = calibrate(topic_valid, sentiment_valid, *logits)
        if "entity" in sets:
            entity_valid = sets["entity"]["valid"]
            spec.calibration.update(calibrate_entity(entity_valid, predict_entity_logits(
                model, tokenizer, entity_valid.texts, entity_valid.entities, spec.max_length)))
        print(json.dumps({"calibration": spec.calibration}), flush=True)
    spec.metrics = {"validation": kept_metrics, "history": state["history"],
                    "selection": "selection_score (models/training/validation.py)" if cfg.keep == "best" else "last epoch"}
    spec.provenance = {"config": _config_key(cfg), "seed": cfg.seed, "torch": torch.__version__,
                       "sentiment_sources": {"train": {n: len(d) for n, d in sets["sentiment"]["train"].items()},
                                             "unlabelled": {n: len(d) for n, d in sets["sentiment"]["unlabelled"].items()},
                                             "valid": {n: len(d) for n, d in sets["sentiment"]["valid"].items()},
                                             "per_epoch": counts, "mix": cfg.mix},
                       "teachers": [{"targets": list(t.targets), "model": t.model,
                                     "version": read_spec(t.model).version} for t in teachers],
                       "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    if "entity" in sets:
        spec.provenance["entity_rows"] = {"train": len(sets["entity"]["train"]), "valid": len(sets["entity"]["valid"])}
    save_model(model, spec, cfg.output)
    return kept_metrics


def _warm_start(model: nn.Module, spec: ModelSpec, source: str) -> None:
    """Start from a saved model's trained weights (continued fine-tuning). The saved model
    must have the same base, method and adapter shape; anything else is refused by name."""
    saved = read_spec(source)
    for name, tag in saved.source_tags.items():  # a tag the model learnt is kept, never silently dropped
        if spec.source_tags.get(name) != tag:
            raise ModelError(f"--init-from {source}: it reads the source {name!r} with the tag {tag!r}; "
                             f"pass --source-tag {name}={tag} to continue it")
    if spec.finetune == "full" and saved.finetune == "lora":
        _warm_start_full_from_lora(model, spec, saved, source)
        return
    _refuse_other(saved, spec, source, ("base", "finetune", "lora", "topic_labels", "sentiment_labels"))
    state = read_weights(source, saved)
    expected = set(trainable_state(model))
    if spec.entity and not saved.entity:  # the entity head is new: it starts fresh
        expected = {k for k in expected if not k.startswith("entity_head.")}
    params = dict(model.named_parameters())
    extra = set(state) - expected
    if expected - set(state) or extra - set(params):
        raise ModelError(f"--init-from {source}: its weights do not fit this network "
                         f"(missing {sorted(expected - set(state))[:3]}, extra {sorted(extra - set(params))[:3]})")
    for name in extra:  # an exported adapter also stores base weights that changed (biases, embeddings…)
        params[name].requires_grad_(True)  # they go on training and are saved with the adapter
    model.load_state_dict(state, strict=False)


def _warm_start_full_from_lora(model: nn.Module, spec: ModelSpec, saved: ModelSpec, source: str) -> None:
    """A full fine-tune that starts where a LoRA model ended: its adapter merged into the
    encoder (as serving does), every weight then trainable."""
    _refuse_other(saved, spec, source, ("base", "topic_labels", "sentiment_labels"))
    merged, _, _ = load_model(source)
    result = model.load_state_dict(merged.state_dict(), strict=False)
    fresh = [k for k in result.missing_keys if k.startswith("entity_head.") and not saved.entity and spec.entity]
    if set(result.missing_keys) - set(fresh) or result.unexpected_keys:
        raise ModelError(f"--init-from {source}: its merged weights do not fit this network "
                         f"(missing {result.missing_keys[:3]}, extra {result.unexpected_keys[:3]})")


def _refuse_other(saved: ModelSpec, spec: ModelSpec, source: str, names: tuple[str, ...]) -> None:
    for name in names:
        if _shape(getattr(saved, name)) != _shape(getattr(spec, name)):
            raise ModelError(f"--init-from {source}: its {name} is {getattr(saved, name)!r}, this run's is "
                             f"{getattr(spec, name)!r}; pass the same settings the model was trained with")


def _shape(value):
    """What must match to continue a model: a LoRA adapter's rank, alpha and modules, not its
    dropout (a training-time setting; an exported adapter records 0)."""
    return (value.r, value.alpha, tuple(value.target_modules)) if isinstance(value, LoraSettings) else value


def _to(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device)


def _config_key(cfg: TrainConfig) -> dict:
    """The settings that define a run (a checkpoint only resumes the same run)."""
    data = asdict(cfg)
    for volatile in ("output", "checkpoint_dir", "checkpoint_every", "resume", "threads", "progress", "device", "keep",
                     "teacher_cache"):
        data.pop(volatile)
    for unused in ("unlabelled", "source_tags"):  # an unused option leaves the run's key as it was
        if not data[unused]:
            data.pop(unused)
    return data
