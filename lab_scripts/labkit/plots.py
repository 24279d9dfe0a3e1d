"""Step 04's evaluation plots, as PNG files: PR curve with the threshold, ROC curve,
confusion matrix, feature importance (the lab report embeds them)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402

from processing import metrics  # noqa: E402
from processing.features import FEATURE_COLUMNS  # noqa: E402


def evaluation_plots(report: dict, booster: xgb.Booster, directory: Path) -> list[Path]:
    """The four plots of `report` (processing/evaluation.py's evaluate()) in `directory`; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    y, score = report["curves"]["y"], report["curves"]["score"]
    paths = []

    figure, axis = plt.subplots(figsize=(5, 4))
    precision, recall, _ = metrics.pr_curve(y, score)
    axis.plot(recall, precision, label=f"model (PR-AUC {report['model']['pr_auc']:.3f})")
    axis.axhline(y.mean(), linestyle="--", color="grey", label=f"random ({y.mean():.3f})")
    m = report["model"]
    axis.plot([m["recall"]], [m["precision"]], "o", color="black",
              label=f"threshold {m['threshold']:.2f} (~{report['alerts_per_day_budget']} cards/day on validation)")
    axis.set(xlabel="recall", ylabel="precision", title="Precision-recall, test period")
    axis.legend()
    paths.append(_save(figure, directory / "pr_curve.png"))

    figure, axis = plt.subplots(figsize=(5, 4))
    fpr, tpr = metrics.roc_curve(y, score)
    axis.plot(fpr, tpr, label=f"model (ROC-AUC {report['model']['roc_auc']:.3f})")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test set")
    axis.legend()
    paths.append(_save(figure, directory / "roc_curve.png"))

    figure, axis = plt.subplots(figsize=(4, 4))
    c = report["model"]["confusion_matrix"]
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    axis.imshow(grid, cmap="Blues")
    for (row, col), value in np.ndenumerate(grid):
        axis.text(col, row, f"{value:,}", ha="center", va="center", color="black")
    axis.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["legit", "fraud"], yticklabels=["legit", "fraud"],
             xlabel="predicted", ylabel="actual", title=f"Threshold {report['model']['threshold']:.3f}")
    paths.append(_save(figure, directory / "confusion_matrix.png"))

    figure, axis = plt.subplots(figsize=(6, 6))
    gain = booster.get_score(importance_type="gain")
    ranked = sorted(((gain.get(f"f{i}", 0.0), name) for i, name in enumerate(FEATURE_COLUMNS)))[-15:]
    axis.barh([name for _, name in ranked], [value for value, _ in ranked])
    axis.set(xlabel="total gain", title="Feature importance (top 15)")
    paths.append(_save(figure, directory / "feature_importance.png"))
    return paths


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
