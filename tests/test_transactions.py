"""The generator: labelled, realistic, deterministic, and fraud where the scenarios say."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit.transactions import LABEL_COLUMNS, SCENARIO_SHARE, STREAM_COLUMNS, START, generate


@pytest.fixture(scope="module")
def data():
    return generate(50_000, seed=11)


@pytest.fixture(scope="module")
def joined(data):
    return data.transactions.merge(data.labels, on="transaction_id", validate="one_to_one")


def test_same_seed_same_data_other_seed_other_data():
    first, again, other = generate(3_000, seed=5), generate(3_000, seed=5), generate(3_000, seed=6)
    pd.testing.assert_frame_equal(first.transactions, again.transactions)
    pd.testing.assert_frame_equal(first.labels, again.labels)
    assert not first.transactions["amount"].equals(other.transactions["amount"])
    assert not set(first.transactions["transaction_id"]) & set(other.transactions["transaction_id"])


def test_stream_carries_the_article_fields_and_no_labels(data):
    assert list(data.transactions.columns) == STREAM_COLUMNS
    assert list(data.labels.columns) == LABEL_COLUMNS
    assert not {"is_fraud", "fraud_scenario"} & set(data.transactions.columns)
    assert data.transactions["transaction_id"].is_unique
    assert len(data.labels) == len(data.transactions)


def test_default_fraud_rate_is_between_one_and_two_percent(data):
    assert 0.01 <= data.labels["is_fraud"].mean() <= 0.02


def test_every_scenario_is_present_in_roughly_its_share(data):
    counts = data.labels["fraud_scenario"].value_counts()
    frauds = data.labels["is_fraud"].sum()
    for scenario, share in SCENARIO_SHARE.items():
        assert counts.get(scenario, 0) > 0, scenario
        assert 0.4 * share < counts[scenario] / frauds < 2.0 * share, (scenario, counts[scenario] / frauds)
    assert set(counts.index) == set(SCENARIO_SHARE) | {"none"}


def test_fraud_rate_follows_the_requested_rate():
    low = generate(40_000, seed=3, fraud_rate=0.005).labels["is_fraud"].mean()
    high = generate(40_000, seed=3, fraud_rate=0.03).labels["is_fraud"].mean()
    assert 0.002 < low < 0.008 and 0.02 < high < 0.04


def test_values_are_plausible(data):
    tx = data.transactions
    assert (tx["amount"] > 0).all()
    assert tx["location_distance_km"].between(0, 710).all()
    assert (tx["time_since_last_txn_hours"] >= 0).all()
    assert set(tx["is_international"].unique()) <= {0, 1}
    times = pd.to_datetime(tx["timestamp"])
    assert times.is_monotonic_increasing
    assert times.min() >= START and times.max() < START + pd.Timedelta(days=30)


def test_scenarios_leave_the_signatures_they_document(joined):
    legit = joined[joined["is_fraud"] == 0]
    by = {name: joined[joined["fraud_scenario"] == name] for name in SCENARIO_SHARE}
    assert by["large_amount"]["amount"].min() >= 800
    assert by["compromised_card"]["amount"].median() > 2.5 * legit["amount"].median()
    takeover = by["account_takeover"]
    assert takeover["location_distance_km"].median() > 3 * legit["location_distance_km"].median()
    assert takeover["is_international"].mean() > 0.4 > legit["is_international"].mean()
    own_devices = set(legit["device_fingerprint"])
    assert not set(takeover["device_fingerprint"]) & own_devices
    night = pd.to_datetime(takeover["timestamp"]).dt.hour.between(1, 4).mean()
    assert night > 0.4
    # A compromised terminal's fraud clusters in time at few terminals.
    terminal = by["compromised_terminal"]
    assert terminal["terminal_id"].nunique() < 0.2 * len(terminal)


def test_labels_arrive_after_the_transaction(joined):
    delay = pd.to_datetime(joined["label_available_at"]) - pd.to_datetime(joined["timestamp"])
    assert (delay >= pd.Timedelta(days=1)).all()
    assert (delay <= pd.Timedelta(days=14)).all()


def test_time_since_last_matches_each_customers_history(data):
    tx = data.transactions.assign(ts=pd.to_datetime(data.transactions["timestamp"]))
    for _, history in list(tx.groupby("customer_id"))[:50]:
        gaps = history["ts"].diff().dt.total_seconds().div(3600).round(2).iloc[1:]
        assert np.allclose(gaps.to_numpy(), history["time_since_last_txn_hours"].iloc[1:].to_numpy(), atol=0.011)


@pytest.mark.parametrize("kwargs", [{"n_transactions": 0}, {"n_transactions": 10, "fraud_rate": 0.5}, {"n_transactions": 10, "days": 0}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        generate(**kwargs)
