"""The training recipe for the built-in XGBoost algorithm, shared by step 03, the pipeline
(stacks/pipeline_definition.py) and the benches: one set of hyperparameters, one way to
weight the rare class."""
from __future__ import annotations

HYPERPARAMETERS = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",  # PR-AUC: the metric that matters at 1-2 % positives
    "num_round": "400",
    "early_stopping_rounds": "30",
    "max_depth": "5",
    "eta": "0.1",
    "subsample": "0.8",
    "colsample_bytree": "0.8",
    "min_child_weight": "1",
    "seed": "7",
}


def scale_pos_weight(rows: int, fraud: int) -> float:
    """Weight the rare class up so both classes carry equal total weight (legitimate / fraud)."""
    if fraud == 0:
        raise ValueError("the training set has no fraud")
    return (rows - fraud) / fraud
