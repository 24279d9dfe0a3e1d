"""Drift the lab injects on purpose, each kind a real production failure."""
from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.traffic import features_of
from processing.features import FEATURE_COLUMNS, own_history

NEW_CATEGORY = "crypto"
MISSING_FEATURE = "device_is_new"
KINDS = {
    "amount_x3": "every amount x3 (an upstream unit or currency bug)",
    "new_category": f"merchant_category '{NEW_CATEGORY}', never seen in training (its one-hot columns are all 0)",
    "missing_feature": f"{MISSING_FEATURE} sent empty (an upstream feature stopped arriving)",
}
# What the monitor should report for each kind: (feature, check).
EXPECTED = {
    "amount_x3": ("log_amount", "baseline_drift_check"),
    "new_category": ("category", "categorical_values_check"),
    "missing_feature": (MISSING_FEATURE, "completeness_check"),
}


def features_for(history: pd.DataFrame, labels: pd.Series, rows: pd.Index, kinds: list[str], label_delay_days: float) -> np.ndarray:
    """Feature rows for the payments `rows` of `history`, with the drift `kinds` applied
    (`label_delay_days` from the feature schema, as the model was trained)."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown drift kinds {sorted(unknown)}: choose from {sorted(KINDS)}")
    changed = own_history(history, rows).copy()  # the payments `rows`' features depend on
    if "amount_x3" in kinds:
        changed.loc[rows, "amount"] = changed.loc[rows, "amount"] * 3
    if "new_category" in kinds:
        changed.loc[rows, "merchant_category"] = NEW_CATEGORY
    features = np.array(features_of(changed, labels, rows, label_delay_days))  # a copy of its own: written below
    if "missing_feature" in kinds:
        features[:, FEATURE_COLUMNS.index(MISSING_FEATURE)] = np.nan
    return features
