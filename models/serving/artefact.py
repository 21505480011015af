"""Saving and loading a trained classifier directory.

A model directory holds:
- ``moodwire-model.json`` — base encoder reference, fine-tuning method (and LoRA
  settings), maximum length, both label maps, metrics and provenance;
- ``weights.safetensors`` — the trained parameters: for LoRA the adapter,
  LayerNorms and heads only (the base weights come from the base encoder at
  load time), its factors optionally in int8 (``models/serving/factors.py``); for full
  fine-tuning every parameter;
- ``README.md`` — the model card (written by the training command).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from moodwire.errors import ArtefactError
from models.serving.factors import FACTOR_STORAGES, dequantize_factors, quantize_factors
from models.serving.labels import SENTIMENT_LABELS, TOPIC_LABELS
from models.serving.lora import LoraSettings
from models.serving.network import MultiTaskClassifier, resolve_base

CONFIG_FILE = "moodwire-model.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1
INT8_FACTORS_FORMAT = 2  # written only for int8 factors, so that older readers refuse such a file by its format
DEFAULT_MODEL_DIR = Path(__file__).parent.parent / "default"  # models/default


@dataclass
class ModelSpec:
    """Everything needed to rebuild the network around saved weights."""

    base: str
    finetune: str = "lora"  # "lora" | "full"
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_length: int = 64
    topic_labels: list[str] = field(default_factory=lambda: list(TOPIC_LABELS))
    sentiment_labels: list[str] = field(default_factory=lambda: list(SENTIMENT_LABELS))
    name: str = "moodwire-minilm"
    version: str = "dev"
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    # {"topic_temperature": T, "sentiment_temperature": T, ...}: logits are divided by T at load.
    calibration: dict = field(default_factory=dict)
    # {"tweets": "tweet:"}: text put before every row of that sentiment source in training and
    # validation, so one model keeps apart the conventions of kinds of text; untagged text is
    # read as news (models/training/sources.py).
    source_tags: dict = field(default_factory=dict)
    # "float": weights stored as they are (fp32 or fp16); "int8": a LoRA adapter's factors stored in
    # int8 with per-component scales (models/serving/factors.py), read back as floats at load.
    factor_storage: str = "float"
    # True: the network has the entity head (sentiment toward a named entity, read from the pair
    # "text [SEP] entity"; models/serving/network.py). Older models have none.
    entity: bool = False

    def tag_of(self, read_as: str | None) -> str | None:
        """The tag that reads text as the tagged source ``read_as`` (None: untagged, as news is read)."""
        if read_as is None:
            return None
        if read_as not in self.source_tags:
            known = ", ".join(sorted(self.source_tags)) or "none"
            raise ArtefactError(f"model {self.label} has no source tag {read_as!r} (its tagged sources: {known})")
        return self.source_tags[read_as]

    def temperatures(self) -> tuple[float, float, float]:
        temps = []
        for task in ("topic", "sentiment", "entity"):
            value = self.calibration.get(f"{task}_temperature", 1.0)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.01 <= value <= 100:
                raise ArtefactError(f"model {self.label}: calibration {task}_temperature must be a number "
                                    f"between 0.01 and 100, not {value!r}")
            temps.append(float(value))
        return temps[0], temps[1], temps[2]

    def to_json(self) -> dict:
        data = asdict(self)
        if not self.entity:  # left out, so a model without the entity head reads as before
            del data["entity"]
        if self.factor_storage == "float":  # left out, so a model stored as before reads as before
            del data["factor_storage"]
            return {"format": FORMAT_VERSION, **data}
        return {"format": INT8_FACTORS_FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict, where: str) -> "ModelSpec":
        if data.get("format") not in (FORMAT_VERSION, INT8_FACTORS_FORMAT):
            raise ArtefactError(f"{where}: unsupported model format {data.get('format')!r} "
                                f"(expected {FORMAT_VERSION} or {INT8_FACTORS_FORMAT})")
        data = {k: v for k, v in data.items() if k != "format"}
        try:
            lora = LoraSettings(**data.pop("lora", {}))
            spec = cls(lora=lora, **data)
        except TypeError as exc:
            raise ArtefactError(f"{where}: malformed model description ({exc})") from None
        spec.check_factor_storage(where)
        return spec

    def check_factor_storage(self, where: str) -> None:
        if self.factor_storage not in FACTOR_STORAGES:
            raise ArtefactError(f"{where}: unknown factor_storage {self.factor_storage!r} "
                                f"(expected one of {', '.join(FACTOR_STORAGES)})")
        if self.factor_storage == "int8" and self.finetune != "lora":
            raise ArtefactError(f"{where}: factor_storage 'int8' is for LoRA adapters, not a {self.finetune!r} model")

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class _UnusedPoolerFilter(logging.Filter):
    """Drops transformers' "Some weights of the model checkpoint … were not used" warning when the
    only unused weights are the pooler's: the network mean-pools token states and builds the
    encoder without its pooler on purpose. Any other unused weight is still reported."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Some weights of the model checkpoint"):
            return True
        listed = message[message.find("[") + 1 : message.find("]")]
        names = [n.strip(" '\"") for n in listed.split(",") if n.strip()]
        return not names or not all(n.startswith("pooler.") for n in names)


_POOLER_FILTER = _UnusedPoolerFilter()
logging.getLogger("transformers.modeling_utils").addFilter(_POOLER_FILTER)


def build_network(spec: ModelSpec, relative_to: Path | None = None) -> tuple[MultiTaskClassifier, PreTrainedTokenizerBase]:
    """Build the (untrained-head) network and tokenizer described by ``spec``.

    A base of the form ``./dir`` is resolved against ``relative_to`` (the model directory).
    """
    base_path = resolve_base(spec.base, relative_to)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_path)
        encoder = AutoModel.from_pretrained(base_path, add_pooling_layer=False)
        hidden = AutoConfig.from_pretrained(base_path).hidden_size
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"cannot load base encoder {spec.base!r} from {base_path}: {str(exc)[:300]}") from None
    if spec.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        encoder = get_peft_model(encoder, LoraConfig(
            r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
            target_modules=list(spec.lora.target_modules), bias="none"))
        for name, param in encoder.named_parameters():
            if "LayerNorm" in name:
                param.requires_grad = True
    elif spec.finetune not in ("full", "merged"):
        raise ArtefactError(f"unknown fine-tuning method {spec.finetune!r}; expected 'lora', 'full' or 'merged'")
    model = MultiTaskClassifier(encoder, hidden, len(spec.topic_labels), len(spec.sentiment_labels), entity=spec.entity)
    return model, tokenizer


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_model(model: MultiTaskClassifier, spec: ModelSpec, directory: str | Path,
               card: str | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if spec.finetune == "lora":
        state = trainable_state(model)
    elif spec.finetune == "merged":  # the encoder lives in its own folder; only the heads here
        state = {n: p.detach().contiguous() for n, p in model.state_dict().items() if not n.startswith("encoder.")}
    else:
        state = {n: p.detach().contiguous() for n, p in model.state_dict().items()}
    spec.check_factor_storage(str(directory))
    if spec.factor_storage == "int8":
        state = quantize_factors(state)
    save_file(state, str(directory / WEIGHTS_FILE))
    write_spec(spec, directory)
    if card is not None:
        (directory / "README.md").write_text(card, encoding="utf-8")
    return directory


def write_spec(spec: ModelSpec, directory: str | Path) -> None:
    """Write the model description (``moodwire-model.json``) of the model in ``directory``."""
    (Path(directory) / CONFIG_FILE).write_text(json.dumps(spec.to_json(), indent=2) + "\n", encoding="utf-8")


def read_spec(directory: str | Path) -> ModelSpec:
    directory = Path(directory)
    config = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ArtefactError(f"model directory {directory} does not exist (set MOODWIRE_MODEL or --model to a trained model)")
    if not config.is_file():
        raise ArtefactError(f"{directory} is not a Moodwire model: {CONFIG_FILE} is missing")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtefactError(f"{config} is not valid JSON ({exc})") from None
    return ModelSpec.from_json(data, str(config))


def read_weights(directory: str | Path, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """The saved parameters of the model in ``directory`` as floats (int8 factors read back)."""
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise ArtefactError(f"{directory}: {WEIGHTS_FILE} is missing")
    state = load_file(str(weights))
    return dequantize_factors(state, str(weights)) if spec.factor_storage == "int8" else state


def load_model(directory: str | Path) -> tuple[MultiTaskClassifier, PreTrainedTokenizerBase, ModelSpec]:
    """Load a saved model in eval mode; LoRA adapters are merged into the encoder."""
    directory = Path(directory)
    spec = read_spec(directory)
    weights = directory / WEIGHTS_FILE
    state = read_weights(directory, spec)
    model, tokenizer = build_network(spec, directory)
    result = model.load_state_dict(state, strict=spec.finetune == "full")
    if result.unexpected_keys:
        raise ArtefactError(f"{weights}: parameters that do not fit the network: {result.unexpected_keys[:5]}")
    if spec.finetune == "lora":
        expected = set(trainable_state(model))
    elif spec.finetune == "merged":
        expected = {n for n in model.state_dict() if not n.startswith("encoder.")}
    else:
        expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    if missing:
        raise ArtefactError(f"{weights}: parameters missing from the file: {missing[:5]}")
    if spec.finetune == "lora":
        model.encoder = model.encoder.merge_and_unload()
    model.temperatures = spec.temperatures()
    model.eval()
    for param in model.parameters():
        param.requires_grad = False
    return model, tokenizer, spec


def export_model(source: str | Path, output: str | Path, half: bool = False) -> Path:
    """A self-contained copy of a model: the LoRA adapter merged into the encoder, saved with
    its tokenizer under ``output/encoder``, the heads beside it. Loads without peft and
    without the packaged base encoder (``load_model(output)``)."""
    model, tokenizer, spec = load_model(source)
    output = Path(output)
    if half:
        model = model.half()
    model.encoder.save_pretrained(output / "encoder")
    tokenizer.save_pretrained(output / "encoder")
    exported = ModelSpec(**{**spec.__dict__, "base": "./encoder", "finetune": "merged", "factor_storage": "float",
                            "provenance": {**spec.provenance, "exported_from": str(source), "half": half}})
    card = Path(source) / "README.md"
    return save_model(model, exported, output, card.read_text(encoding="utf-8") if card.is_file() else None)
