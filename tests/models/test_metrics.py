from __future__ import annotations

import pytest

from models.training.metrics import classification_report


def test_report_on_a_hand_made_set_is_exact():
    names = ["negative", "neutral", "positive"]
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0, 2]
    r = classification_report(y_true, y_pred, names)
    assert r["accuracy"] == pytest.approx(7 / 10)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 4]]
    neg, neu, pos = (r["per_class"][n] for n in names)
    assert (neg["precision"], neg["recall"]) == pytest.approx((2 / 3, 2 / 3))
    assert (neu["precision"], neu["recall"]) == pytest.approx((1 / 2, 1 / 2))
    assert (pos["precision"], pos["recall"]) == pytest.approx((4 / 5, 4 / 5))
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)
    assert [neg["support"], neu["support"], pos["support"]] == [3, 2, 5]


def test_absent_class_is_left_out_of_macro_f1_and_matches_sklearn():
    from sklearn.metrics import f1_score

    y_true, y_pred = [0, 0, 2, 2], [0, 2, 2, 2]
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert r["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_score_correlation_when_scores_given():
    r = classification_report([0, 1], [0, 1], ["a", "b"], [0.1, 0.2, 0.3][:2], [1.0, 2.0])
    assert r["score_correlation"]["pearson"] == pytest.approx(1.0)
