from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA


def shared(rel: str) -> str:
    path = SHARED_DATA / rel
    if not path.is_file():
        pytest.fail(f"labelled data {path} is missing (see ../shared/data/README.md)")
    return str(path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model fine-tuned for a few seconds on a small slice of the shared data."""
    from models.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny") / "model"
    train(TrainConfig(
        topic_train=shared("tfnt/topic_train.csv"), topic_valid=shared("tfnt/topic_valid.csv"),
        sentiment_train=shared("tfns/sent_train.csv"), sentiment_valid=shared("tfns/sent_valid.csv"),
        output=str(out), limit=96, epochs=2, batch_size=16, progress=False, checkpoint_every=0))
    return out
