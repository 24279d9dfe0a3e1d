"""Binary-classification metrics for imbalanced data, in plain numpy (no scikit-learn).

Conventions follow scikit-learn: average precision is the step-wise area under the
precision-recall curve (no interpolation); ROC-AUC counts ties as half.
"""
from __future__ import annotations

import numpy as np


def _sorted_counts(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true/false positives at each distinct score, highest first."""
    order = np.argsort(-score, kind="mergesort")
    y, s = y_true[order], score[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps, fps, s[last_of_tie]


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """PR-AUC as average precision: sum over thresholds of (recall step) x precision."""
    y_true = np.asarray(y_true, dtype=float)
    if y_true.sum() == 0:
        return float("nan")
    tps, fps, _ = _sorted_counts(y_true, np.asarray(score, dtype=float))
    precision = tps / (tps + fps)
    recall = tps / y_true.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    y_true = np.asarray(y_true, dtype=float)
    positives, negatives = y_true.sum(), len(y_true) - y_true.sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    tps, fps, _ = _sorted_counts(y_true, np.asarray(score, dtype=float))
    tpr, fpr = np.r_[0.0, tps / positives], np.r_[0.0, fps / negatives]
    return float(np.trapezoid(tpr, fpr))


def pr_curve(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) per distinct score, highest threshold first."""
    y_true = np.asarray(y_true, dtype=float)
    tps, fps, thresholds = _sorted_counts(y_true, np.asarray(score, dtype=float))
    return tps / (tps + fps), tps / max(y_true.sum(), 1), thresholds


def roc_curve(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), starting at (0, 0)."""
    y_true = np.asarray(y_true, dtype=float)
    tps, fps, _ = _sorted_counts(y_true, np.asarray(score, dtype=float))
    return np.r_[0.0, fps / max(len(y_true) - y_true.sum(), 1)], np.r_[0.0, tps / max(y_true.sum(), 1)]


def confusion(y_true, predicted) -> dict[str, int]:
    y, p = np.asarray(y_true).astype(bool), np.asarray(predicted).astype(bool)
    return {"tp": int((y & p).sum()), "fp": int((~y & p).sum()), "fn": int((y & ~p).sum()), "tn": int((~y & ~p).sum())}


def at_threshold(y_true, score, threshold: float) -> dict[str, float]:
    """Precision, recall, F1, accuracy and the confusion matrix when alerting on score >= threshold."""
    c = confusion(y_true, np.asarray(score) >= threshold)
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (c["tp"] + c["tn"]) / max(sum(c.values()), 1)
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy, "confusion_matrix": c}
