"""Binary classification metrics for the vulnerability models (shipped to SageMaker: stdlib + numpy).

Label 1 is the positive class ("vulnerable"); a score is P(vulnerable) and a row is predicted
positive when `score >= threshold`.

Conventions for undefined ratios: precision, recall, F1 and FPR are 0.0 when their denominator
is 0 (e.g. precision with no positive predictions, FPR with no negative labels), so that a gate
comparing them to thresholds always gets a number; ROC AUC is None when only one class is present,
because it is not defined there and 0.5 would be a made-up value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METRIC_KEYS = ("n", "accuracy", "precision", "recall", "f1", "fpr", "roc_auc", "confusion_matrix")


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else 0.0


def _as_labels(labels: Sequence[int]) -> np.ndarray:
    values = list(labels)
    for i, v in enumerate(values):
        if v not in (0, 1):
            raise ValueError(f"labels must be 0 or 1; index {i} is {v!r}")
    return np.asarray(values, dtype=np.int64)


def _as_scores(scores: Sequence[float]) -> np.ndarray:
    arr = np.asarray(list(scores), dtype=np.float64)
    if arr.size and not np.all(np.isfinite(arr)):
        idx = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"scores must be finite numbers; index {idx} is {arr[idx]!r}")
    return arr


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Rank-based ROC AUC (Mann–Whitney U / (n_pos * n_neg)), ties counted as one half.

    Returns None when the labels contain only one class.
    """
    y = _as_labels(labels)
    s = _as_scores(scores)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    # Average ranks over tied scores: each block of equal scores gets the mean of the ranks it spans.
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts).astype(np.float64)
    mean_rank = last_rank - (counts - 1) / 2.0
    ranks = mean_rank[inverse]
    rank_sum_pos = float(ranks[y == 1].sum())
    u = rank_sum_pos - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def classification_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1, FPR, ROC AUC and the confusion matrix.

    Args:
        labels: true labels, 0 or 1.
        scores: P(label == 1) per row, same length as `labels`.
        threshold: a row is predicted 1 when its score is >= threshold.

    Returns:
        `{"n", "accuracy", "precision", "recall", "f1", "fpr", "roc_auc",
        "confusion_matrix": [[tn, fp], [fn, tp]]}`. With no rows, `n` is 0 and every rate is None.
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    y = _as_labels(labels)
    s = _as_scores(scores)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    n = int(y.size)
    if n == 0:
        return {"n": 0, "accuracy": None, "precision": None, "recall": None, "f1": None, "fpr": None,
                "roc_auc": None, "confusion_matrix": [[0, 0], [0, 0]]}
    pred = (s >= threshold).astype(np.int64)
    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": n,
        "accuracy": (tp + tn) / n,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": _ratio(fp, fp + tn),
        "roc_auc": roc_auc(y, s),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
