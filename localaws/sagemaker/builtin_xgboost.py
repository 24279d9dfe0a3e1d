"""SageMaker's built-in XGBoost algorithm (image 3.2-0), run with the xgboost library.

Same data contract as the container: each channel a directory of CSV files, label in the
first column, no header; hyperparameters arrive as strings. Same artifact: a booster
saved as `xgboost-model` (the container's name, loaded by its serving stack with
Booster.load_model). The library is pinned to the image's version line (3.2): a 3.x
model read by 1.7 loads without error and predicts wrong.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import xgboost as xgb

MODEL_FILE = "xgboost-model"
# Hyperparameters that steer training rather than the booster.
ROUND_KEYS = {"num_round", "early_stopping_rounds", "csv_weights"}
INTEGER_PARAMS = {"max_depth", "seed", "max_bin", "num_parallel_tree", "nthread", "max_leaves"}

# Offline, training shares this machine with the local AWS that answers the lab's polls.
# XGBoost's OpenMP threads spin while they wait, so with one thread per core any other
# busy process slows training and makes it erratic (bench/pipeline.py; in bench/results.json
# training_20k_busy_core_per_core_vs_fitted_ratio, and the spread
# training_20k_busy_core_per_core_max_vs_min_ratio against ..._fitted_max_vs_min_ratio).
# One core is left to the rest, and trainings take turns on the others (tuning's parallel
# children too): never more XGBoost threads than cores.
def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


FITTED_THREADS = max(1, usable_cores() - 1)
_CORES = threading.Lock()


class AlgorithmInputError(ValueError):
    """Bad channel data or hyperparameters: the job fails with a ClientError, as on SageMaker."""


def read_channel(directory: Path) -> xgb.DMatrix:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise AlgorithmInputError(f"channel {directory.name} has no files")
    try:
        data = np.vstack([np.loadtxt(p, delimiter=",", ndmin=2) for p in files if p.stat().st_size])
    except ValueError as error:
        raise AlgorithmInputError(f"channel {directory.name}: not numeric CSV with the label first ({error})") from None
    return xgb.DMatrix(data[:, 1:], label=data[:, 0])


def booster_params(hyperparameters: dict[str, str]) -> dict[str, object]:
    params: dict[str, object] = {"verbosity": 1}
    for key, value in hyperparameters.items():
        if key in ROUND_KEYS or key.startswith("sagemaker_"):
            continue
        if key == "eval_metric":
            params[key] = value.split(",")
            continue
        try:
            params[key] = int(float(value)) if key in INTEGER_PARAMS else float(value)
        except ValueError:
            params[key] = value  # objective, tree_method, ...
    return params


def train(
    hyperparameters: dict[str, str],
    channels: dict[str, Path],
    model_dir: Path,
    checkpoint_dir: Path | None,
    log: Callable[[str], None],
) -> dict[str, float]:
    """Train as the container does; returns final metrics named like SageMaker's ("validation:aucpr")."""
    if "train" not in channels:
        raise AlgorithmInputError("the train channel is required")
    if "num_round" not in hyperparameters:
        raise AlgorithmInputError("hyperparameter num_round is required")
    dtrain = read_channel(channels["train"])
    evals = [(dtrain, "train")]
    if "validation" in channels:
        evals.append((read_channel(channels["validation"]), "validation"))
    rounds = int(float(hyperparameters["num_round"]))
    early = hyperparameters.get("early_stopping_rounds")
    if early and len(evals) < 2:
        raise AlgorithmInputError("early_stopping_rounds needs a validation channel")

    start_from, callbacks = None, []
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        saved = sorted(checkpoint_dir.glob("xgboost-checkpoint.*"), key=lambda p: int(p.suffix[1:]))
        if saved:  # a spot interruption resumes from the last checkpoint
            start_from = xgb.Booster(model_file=str(saved[-1]))
            rounds = max(0, rounds - start_from.num_boosted_rounds())
            log(f"resuming from {saved[-1].name}")
        callbacks.append(_Checkpoint(checkpoint_dir))

    history: dict[str, dict[str, list[float]]] = {}
    params = {"nthread": FITTED_THREADS, **booster_params(hyperparameters)}  # a job's own nthread wins
    with _CORES:
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=rounds,
            evals=evals,
            evals_result=history,
            early_stopping_rounds=int(float(early)) if early else None,
            xgb_model=start_from,
            callbacks=callbacks,
            verbose_eval=False,
        )
    for round_index in range(len(next(iter(next(iter(history.values())).values()), []))):
        log(f"[{round_index}]" + "".join(f"\t{d}-{m}:{v[round_index]:.5f}" for d, ms in history.items() for m, v in ms.items()))
    model_dir.mkdir(parents=True, exist_ok=True)
    # Saved as UBJSON, the format the container writes; the file name carries no extension.
    booster.save_model(str(model_dir / f"{MODEL_FILE}.ubj"))
    (model_dir / f"{MODEL_FILE}.ubj").rename(model_dir / MODEL_FILE)
    best = getattr(booster, "best_iteration", None)
    final = {}
    for data_name, metrics in history.items():
        for metric, values in metrics.items():
            final[f"{data_name}:{metric}"] = float(values[best if best is not None and best < len(values) else -1])
    log(f"best iteration {best}; final metrics {final}")
    return final


class _Checkpoint(xgb.callback.TrainingCallback):
    """Save the booster every 10 rounds as xgboost-checkpoint.<round>, like the container."""

    def __init__(self, directory: Path, every: int = 10) -> None:
        super().__init__()
        self.directory, self.every = directory, every

    def after_iteration(self, model, epoch, evals_log) -> bool:
        if (epoch + 1) % self.every == 0:
            model.save_model(str(self.directory / f"xgboost-checkpoint.{model.num_boosted_rounds()}"))
        return False
