"""Named training sources, their sampling, calibration figures and temperature fitting."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from models.training.calibration import fit_temperature, reliability
from moodwire.errors import DataError
from models.serving.labels import default_label_map
from models.training.sources import draw, epoch_counts, load_sources, parse_sources, refuse_overlap
from models.training.validation import selection_score

SENT = default_label_map("sentiment")


def test_word_and_integer_labelled_sources_load_and_split_by_source_column(tmp_path: Path):
    words = tmp_path / "news.csv"
    words.write_text("text,label,source\nBank fails,negative,wire\nProfit up,positive,press\nRates held,neutral,wire\n")
    ints = tmp_path / "tweets.csv"
    ints.write_text("text,label\nStocks slide,0\nShares jump,1\nMarket flat,2\n")
    sets = load_sources(parse_sources([f"news={words}", f"tweets={ints}"], "--sentiment-train"), SENT)
    assert sorted(sets) == ["news/press", "news/wire", "tweets"]
    assert sets["news/wire"].texts == ["Bank fails", "Rates held"]
    assert [SENT.names[y] for y in sets["news/wire"].labels] == ["negative", "neutral"]
    assert [SENT.names[y] for y in sets["tweets"].labels] == ["negative", "positive", "neutral"]


def test_a_bare_path_is_one_source_named_by_its_stem():
    assert [(s.name, s.path) for s in parse_sources("data/sent_train.csv", "--x")] == [("sent_train", "data/sent_train.csv")]


@pytest.mark.parametrize("values, fragment", [
    (["=a.csv"], "write NAME=PATH"), (["a/b=x.csv"], "may not contain '/'"),
    (["a=x.csv", "a=y.csv"], "given twice"), ([], "at least one"),
])
def test_bad_source_arguments_are_named(values, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_sources(values, "--sentiment-train")


def test_a_validation_file_is_never_trained_on(tmp_path: Path):
    held_out = tmp_path / "news_valid.csv"
    with pytest.raises(DataError, match="is also the validation source"):
        refuse_overlap(parse_sources([f"n={held_out}"], "t"), parse_sources([f"v={tmp_path}/../{tmp_path.name}/news_valid.csv"], "v"))


def test_sqrt_mix_lifts_small_sources_and_keeps_the_epoch_length():
    sizes = {"tweets": 9543, "news/sentfin": 9467, "news/wsj": 112}
    counts = epoch_counts(sizes, "sqrt")
    assert abs(sum(counts.values()) - sum(sizes.values())) <= len(sizes)
    assert counts["news/wsj"] > 5 * sizes["news/wsj"]  # drawn several times an epoch
    assert counts["tweets"] < sizes["tweets"]
    assert epoch_counts(sizes, "proportional") == sizes
    equal = epoch_counts(sizes, "equal")
    assert max(equal.values()) - min(equal.values()) <= 1


def test_draw_repeats_whole_passes_before_any_row_repeats_again():
    rows = draw(10, 25, random.Random(1))
    counts = np.bincount(rows, minlength=10)
    assert len(rows) == 25 and counts.min() == 2 and counts.max() == 3
    subset = draw(10, 4, random.Random(1))
    assert len(set(subset)) == 4


def test_expected_calibration_error_of_known_bins():
    # four predictions at confidence 0.9, three right: |0.75 - 0.9| = 0.15
    probs = np.array([[0.9, 0.1]] * 4)
    assert reliability(probs, [0, 0, 0, 1])["ece"] == pytest.approx(0.15)
    # perfectly calibrated halves: confidence 0.6 right 60 % of the time
    probs = np.array([[0.6, 0.4]] * 10)
    table = reliability(probs, [0] * 6 + [1] * 4)
    assert table["ece"] == pytest.approx(0.0, abs=1e-12)
    assert table["bins"][0]["n"] == 10


def test_temperature_scaling_recovers_the_temperature_of_overconfident_logits():
    generator = torch.Generator().manual_seed(3)
    true_logits = torch.randn(4000, 3, generator=generator) * 1.5
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=generator).squeeze(1).tolist()
    overconfident = true_logits * 2.5  # a model 2.5× too sure of itself
    fitted = fit_temperature(overconfident, labels)
    assert fitted == pytest.approx(2.5, rel=0.1)
    before = reliability(overconfident.softmax(-1).numpy(), labels)["ece"]
    after = reliability((overconfident / fitted).softmax(-1).numpy(), labels)["ece"]
    assert after < before / 2


def test_selection_score_counts_the_weakest_news_source():
    def fig(acc):
        return {"accuracy": acc, "macro_f1": acc, "n": 10}
    base = {"topic": fig(0.9), "sentiment": fig(0.8)}
    even = {**base, "sentiment_sources": {"tweets": fig(0.9), "news": fig(0.8), "news/a": fig(0.8), "news/b": fig(0.8)}}
    lopsided = {**base, "sentiment_sources": {"tweets": fig(0.9), "news": fig(0.8), "news/a": fig(0.95), "news/b": fig(0.6)}}
    assert selection_score(even) > selection_score(lopsided)


def test_only_the_unused_pooler_warning_is_silenced():
    import logging

    from models.serving.artefact import _UnusedPoolerFilter

    def record(message):
        return logging.LogRecord("transformers.modeling_utils", logging.WARNING, __file__, 1, message, None, None)

    keep = _UnusedPoolerFilter().filter
    assert not keep(record("Some weights of the model checkpoint at /m were not used when initializing BertModel: "
                           "['pooler.dense.bias', 'pooler.dense.weight']\n- This IS expected ..."))
    assert keep(record("Some weights of the model checkpoint at /m were not used when initializing BertModel: "
                       "['pooler.dense.bias', 'encoder.layer.0.attention.self.query.weight']"))
    assert keep(record("Some other warning"))
