"""Calibration of predicted probabilities: expected calibration error, reliability bins and
temperature scaling.

Analysts read the sentiment probabilities and every window is driven by p₊ − p₋, so a model
that says 0.95 should be right about 95 % of the time. Temperature scaling divides a head's
logits by one fitted T > 0 (T > 1 softens over-confident probabilities); it never changes
which class wins, so accuracy and F1 are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

N_BINS = 15


def reliability(probs: np.ndarray, labels: Sequence[int], n_bins: int = N_BINS) -> dict:
    """Expected calibration error and the reliability table of the top-class confidence.

    Bins are equal-width over (0, 1]; ECE = Σ_b (n_b / n) · |accuracy_b − confidence_b|.
    """
    probs = np.asarray(probs, dtype=float)
    labels = np.asarray(labels, dtype=int)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError("probs must be (n, classes) with one label per row")
    if probs.shape[0] == 0:
        return {"ece": 0.0, "n_bins": n_bins, "bins": []}
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        member = which == b
        count = int(member.sum())
        if not count:
            continue
        acc, conf = float(correct[member].mean()), float(confidence[member].mean())
        ece += count / len(labels) * abs(acc - conf)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": count,
                     "accuracy": acc, "confidence": conf})
    return {"ece": float(ece), "n_bins": n_bins, "bins": bins}


def fit_temperature(logits: torch.Tensor, labels: Sequence[int]) -> float:
    """The T minimising the negative log-likelihood of ``softmax(logits / T)`` on these labels.

    A golden-section search over log T in [1/8, 8] (the NLL is convex in 1/T, so unimodal
    in log T): deterministic and needs no optimiser state.
    """
    logits = logits.detach().double().cpu()
    target = torch.as_tensor(list(labels), dtype=torch.long)
    if logits.shape[0] == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / np.exp(log_t), target))

    low, high = np.log(1 / 8), np.log(8.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2))


def reliability_axes(ax, table: dict, title: str) -> None:
    """Draw a reliability diagram (accuracy against confidence per bin) on a matplotlib axis."""
    bins = table["bins"]
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    if bins:
        centres = [(b["low"] + b["high"]) / 2 for b in bins]
        width = bins[0]["high"] - bins[0]["low"]
        ax.bar(centres, [b["accuracy"] for b in bins], width=width * 0.9, alpha=0.7, color="#3465a4",
               edgecolor="black", linewidth=0.5, label="accuracy in bin")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#cc0000",
                markersize=3, label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nexpected calibration error {table['ece']:.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
