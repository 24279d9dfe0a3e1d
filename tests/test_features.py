"""The shared feature module: right values, and nothing from the future."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit.transactions import generate
from processing.features import FEATURE_COLUMNS, LABEL_DELAY_DAYS, build_features


@pytest.fixture(scope="module")
def history():
    data = generate(6_000, seed=21, days=40, customers=60, terminals=120)
    tx = data.transactions.assign(timestamp=pd.to_datetime(data.transactions["timestamp"], utc=True))
    return tx, data.labels["is_fraud"]


def test_columns_numeric_complete_and_in_order(history):
    tx, fraud = history
    features = build_features(tx, fraud)
    assert list(features.columns) == FEATURE_COLUMNS
    assert not features.isna().any().any()
    assert len(features) == len(tx)


def test_customer_windows_match_a_brute_force_count(history):
    tx, fraud = history
    features = build_features(tx, fraud)
    for row in tx.sample(40, random_state=1).itertuples():
        same = tx[(tx["customer_id"] == row.customer_id) & (tx["timestamp"] < row.timestamp)]
        recent = same[same["timestamp"] > row.timestamp - pd.Timedelta(days=7)]
        assert features.at[row.Index, "customer_txn_count_7d"] == len(recent)
        expected_mean = recent["amount"].mean() if len(recent) else 0.0
        assert features.at[row.Index, "customer_mean_amount_7d"] == pytest.approx(expected_mean)
        assert features.at[row.Index, "device_is_new"] == int(row.device_fingerprint not in set(same["device_fingerprint"]))


def test_terminal_rate_uses_only_labels_older_than_the_delay(history):
    tx, fraud = history
    features = build_features(tx, fraud)
    for row in tx.sample(40, random_state=2).itertuples():
        end = row.timestamp - pd.Timedelta(days=LABEL_DELAY_DAYS)
        window = tx[(tx["terminal_id"] == row.terminal_id) & (tx["timestamp"] <= end) & (tx["timestamp"] > end - pd.Timedelta(days=30))]
        expected = fraud[window.index].mean() if len(window) else 0.0
        assert features.at[row.Index, "terminal_fraud_rate_30d"] == pytest.approx(expected)


def test_the_future_changes_nothing_in_the_past(history):
    """Drop every payment after a cut-off and flip every label after it: features of
    earlier payments must not move (no leakage through history or labels)."""
    tx, fraud = history
    cut = tx["timestamp"].quantile(0.6)
    full = build_features(tx, fraud)
    past = tx["timestamp"] < cut
    truncated = build_features(tx[past], fraud[past])
    pd.testing.assert_frame_equal(full[past], truncated)
    flipped = fraud.where(tx["timestamp"] < cut - pd.Timedelta(days=LABEL_DELAY_DAYS), 1 - fraud)
    relabelled = build_features(tx, flipped)
    pd.testing.assert_frame_equal(full[past], relabelled[past])


def test_unknown_category_is_all_zero_and_first_payment_has_neutral_history(history):
    tx, fraud = history
    newcomer = tx.iloc[[0]].assign(customer_id="C-NEW", merchant_category="crypto", device_fingerprint="DEV-NEW")
    features = build_features(newcomer, fraud.iloc[[0]])
    assert features.filter(like="category_").sum(axis=1).item() == 0
    assert features["customer_txn_count_30d"].item() == 0
    assert features["amount_to_customer_mean_30d"].item() == 1.0
    assert features["device_is_new"].item() == 1
    assert np.isclose(features["log_amount"].item(), np.log1p(newcomer["amount"].item()))
