"""Classification reports: accuracy, macro-F1, per-class figures, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str],
                          scores_true: Sequence[float] | None = None,
                          scores_pred: Sequence[float] | None = None) -> dict:
    """Exact figures computed from the confusion matrix.

    Macro-F1 averages over the classes present in ``y_true`` or ``y_pred`` (a class
    absent from both has no defined F1 and is left out, as scikit-learn does).
    """
    n = len(names)
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError("y_true and y_pred differ in length")
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    report = {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "labels": list(names),
        "confusion_matrix": confusion.tolist(),
    }
    if scores_true is not None and scores_pred is not None and len(scores_true) > 1:
        from scipy.stats import pearsonr, spearmanr

        report["score_correlation"] = {
            "pearson": float(pearsonr(scores_true, scores_pred)[0]),
            "spearman": float(spearmanr(scores_true, scores_pred)[0]),
        }
    return report


def confusion_png(report: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(report["confusion_matrix"])
    labels = report["labels"]
    size = max(4.0, 0.45 * len(labels) + 2)
    calibration = report.get("calibration")
    if calibration is not None:  # confusion matrix on the left, reliability diagram on the right
        fig, (ax, right) = plt.subplots(1, 2, figsize=(size + 1 + size, size),
                                        gridspec_kw={"width_ratios": [size + 1, size]})
        from models.training.calibration import reliability_axes

        reliability_axes(right, calibration, "reliability")
    else:
        fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(j, i, str(value), ha="center", va="center", fontsize=6,
                    color="white" if value > matrix.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
