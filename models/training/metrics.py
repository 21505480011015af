"""Classification reports: accuracy, macro-F1, per-class figures, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str],
                          scores_true: Sequence[float] | None = None,
                          scores_pred: Sequence[float] | None = None) -> dict:
    """Accuracy, macro-F1, per-class figures and the confusion matrix (scikit-learn's metrics).

    Macro-F1 averages over the classes present in ``y_true`` or ``y_pred`` (a class absent
    from both has no defined F1 and is left out, as scikit-learn's ``f1_score`` does when it
    is given only the labels seen); a class never predicted has precision 0.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    n = len(names)
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError("y_true and y_pred differ in length")
    every = list(range(n))
    confusion = confusion_matrix(y_true, y_pred, labels=every) if len(y_true) else np.zeros((n, n), dtype=int)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=every, zero_division=0)
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    report = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
        if present else 0.0,
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
