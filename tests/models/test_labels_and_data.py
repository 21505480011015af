from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.serving.text import clean_text
from models.training.data import load_labelled
from moodwire.errors import DataError
from models.serving.labels import LabelMap, default_label_map

SENT = default_label_map("sentiment")
TOPIC = default_label_map("topic")


@pytest.mark.parametrize("raw, name", [
    (0, "negative"), (1, "positive"), (2, "neutral"), ("0", "negative"), (2.0, "neutral"),
    ("Bearish", "negative"), ("BULLISH", "positive"), ("neutral", "neutral"), (" Positive ", "positive"),
    ("NEGATIVE", "negative"),
])
def test_sentiment_labels_in_training_scheme_or_by_name(raw, name):
    assert SENT.names[SENT.index(raw)] == name


@pytest.mark.parametrize("raw, name", [(0, "Analyst Update"), (19, "Stock Movement"), ("ipo", "IPO"),
                                       ("Fed / Central Banks", "Fed | Central Banks"), ("11", "IPO")])
def test_topic_labels_by_id_or_name(raw, name):
    assert TOPIC.names[TOPIC.index(raw)] == name


@pytest.mark.parametrize("label_map, raw, fragment", [
    (SENT, 3, "0 (bearish), 1 (bullish) or 2 (neutral)"),
    (SENT, "sideways", "unknown sentiment label 'sideways'; expected one of: negative, neutral, positive"),
    (TOPIC, 20, "between 0 and 19"),
    (TOPIC, "Crypto", "unknown topic label 'Crypto'"),
    (SENT, True, "unknown sentiment label True"),
])
def test_unknown_labels_are_named(label_map: LabelMap, raw, fragment):
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        label_map.index(raw)


def test_clean_text_drops_links_and_entities():
    assert clean_text("Apple &amp; Tesla rally  https://t.co/abc123 now") == "Apple & Tesla rally now"


def test_csv_and_jsonl_load_the_same(tmp_path: Path):
    csv = tmp_path / "a.csv"
    csv.write_text('text,label\n"Stocks fall, again",bearish\nRates steady,2\n')
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"text": "Stocks fall, again", "label": "bearish"}) + "\n\n"
                     + json.dumps({"text": "Rates steady", "label": 2}) + "\n")
    a, b = load_labelled(csv, SENT), load_labelled(jsonl, SENT)
    assert a.texts == b.texts == ["Stocks fall, again", "Rates steady"]
    assert a.labels == b.labels == [0, 1]  # negative, neutral


def test_scores_column_is_read(tmp_path: Path):
    f = tmp_path / "s.csv"
    f.write_text("text,label,score\nup,positive,0.8\ndown,negative,-0.5\n")
    assert load_labelled(f, SENT).scores == [0.8, -0.5]


@pytest.mark.parametrize("name, content, fragment", [
    ("empty.csv", "", "is empty"),
    ("header.csv", "text,label\n", "has no rows"),
    ("nolabel.csv", "text,sentiment\na,1\n", "has no 'label' column (columns: text, sentiment)"),
    ("notext.jsonl", '{"label": 1}\n', "has no 'text' column"),
    ("badlabel.csv", "text,label\na,1\nb,7\n", "row 3: unknown sentiment label 7"),
    ("blanklabel.csv", "text,label\na,\n", "row 2 has an empty label"),
    ("bad.jsonl", '{"text": "a", "label": 1}\n{oops\n', "bad.jsonl:2: not valid JSON"),
    ("data.parquet", "x", "unsupported file type '.parquet'"),
])
def test_bad_files_are_named(tmp_path: Path, name, content, fragment):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_labelled(f, SENT)


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        load_labelled(tmp_path / "nope.csv", SENT)


def test_non_utf8_file(tmp_path: Path):
    f = tmp_path / "latin.csv"
    f.write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_labelled(f, SENT)
