"""The shared feature module: right values, and nothing from the future."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from labkit import drift
from labkit.traffic import features_of
from labkit.transactions import generate
from processing.features import FEATURE_COLUMNS, LABEL_DELAY_DAYS, build_features, own_history


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


@pytest.fixture(scope="module")
def lab_sized():
    data = generate(20_000, seed=23)
    joined = data.transactions.merge(data.labels, on="transaction_id")
    tx = joined.assign(timestamp=pd.to_datetime(joined["timestamp"], utc=True))
    return tx, pd.to_datetime(tx["label_available_at"], utc=True)


def features_from_what_existed(tx: pd.DataFrame, available: pd.Series, row: int, label_delay_days: float) -> pd.Series:
    """One payment's features recomputed from the payments made until then and the labels
    that had arrived by then (every other label unknown, counted as 0 like the job does)."""
    now = tx.at[row, "timestamp"]
    past = tx[tx["timestamp"] <= now]
    known = past["is_fraud"].where(available[past.index] <= now, 0)
    return build_features(past, known, label_delay_days=label_delay_days).loc[row]


def test_every_feature_family_is_computed_from_what_existed_at_the_payment(lab_sized):
    """Transaction, customer and terminal features of sampled payments equal the same features
    recomputed from the past and the labels known then: nothing leaks from the future."""
    tx, available = lab_sized
    full = build_features(tx, tx["is_fraud"], label_delay_days=LABEL_DELAY_DAYS)
    sample = tx[tx["timestamp"] > tx["timestamp"].min() + pd.Timedelta(days=20)].sample(60, random_state=4).index
    terminal_nonzero = 0
    for row in sample:
        pd.testing.assert_series_equal(full.loc[row], features_from_what_existed(tx, available, row, LABEL_DELAY_DAYS), check_names=False)
        terminal_nonzero += full.at[row, "terminal_fraud_rate_30d"] > 0
    assert terminal_nonzero > 5  # the terminal windows were exercised, not all empty


def test_a_lag_shorter_than_the_label_delay_would_leak_and_the_check_sees_it(lab_sized):
    """The control of the test above: with terminal windows lagged 1 day, labels that had not
    arrived yet enter them, and features recomputed from what existed differ."""
    tx, available = lab_sized
    full = build_features(tx, tx["is_fraud"], label_delay_days=1)
    frauds = tx[(tx["is_fraud"] == 1) & (tx["fraud_scenario"] == "compromised_terminal")]
    differs = 0
    for row in frauds.sample(min(30, len(frauds)), random_state=5).index:
        then = features_from_what_existed(tx, available, row, 1)
        differs += not np.allclose(full.loc[row].to_numpy(), then.to_numpy())
    assert differs > 0


def test_unknown_category_is_all_zero_and_first_payment_has_neutral_history(history):
    tx, fraud = history
    newcomer = tx.iloc[[0]].assign(customer_id="C-NEW", merchant_category="crypto", device_fingerprint="DEV-NEW")
    features = build_features(newcomer, fraud.iloc[[0]])
    assert features.filter(like="category_").sum(axis=1).item() == 0
    assert features["customer_txn_count_30d"].item() == 0
    assert features["amount_to_customer_mean_30d"].item() == 1.0
    assert features["device_is_new"].item() == 1
    assert np.isclose(features["log_amount"].item(), np.log1p(newcomer["amount"].item()))


def test_scoring_features_from_the_payments_own_history_equal_the_whole_historys(lab_sized):
    """Steps 06, 08 and 09 compute the features of the payments they send from those payments'
    customers and terminals only: the same values as over the whole history (to float rounding
    in the window sums), from a fraction of it."""
    tx, _ = lab_sized
    labels = tx["is_fraud"].astype(float).where(tx["timestamp"] < tx["timestamp"].quantile(0.95))  # the newest not known yet
    rows = tx.index[-20:].union(tx.sample(20, random_state=6).index)  # 40 of 20k: their terminals are a fifth of 200
    whole = build_features(tx, labels.fillna(0)).loc[rows, FEATURE_COLUMNS].to_numpy(float)
    assert len(own_history(tx, rows)) < 0.5 * len(tx)
    assert np.allclose(features_of(tx, labels, rows, LABEL_DELAY_DAYS), whole, rtol=1e-9, atol=1e-9)

    changed = tx.copy()
    changed.loc[rows, "amount"] *= 3
    changed.loc[rows, "merchant_category"] = drift.NEW_CATEGORY
    drifted = build_features(changed, labels.fillna(0)).loc[rows, FEATURE_COLUMNS].to_numpy(float, copy=True)
    drifted[:, FEATURE_COLUMNS.index(drift.MISSING_FEATURE)] = np.nan
    assert np.allclose(drift.features_for(tx, labels, rows, list(drift.KINDS), LABEL_DELAY_DAYS), drifted, rtol=1e-9, atol=1e-9, equal_nan=True)
