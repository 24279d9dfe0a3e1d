"""The generator: labelled, realistic, deterministic, and fraud where the scenarios say."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import transactions
from labkit.transactions import DAYS, FRAUDSTER_DEVICES, LABEL_COLUMNS, LABEL_DELAY_DAYS, SCENARIO_SHARE, SCENARIOS, STREAM_COLUMNS, START, generate


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


def test_every_scenario_is_documented_with_what_reveals_it():
    assert set(SCENARIOS) == set(SCENARIO_SHARE)
    assert sum(SCENARIO_SHARE.values()) == pytest.approx(1.0)
    assert all(s.what and s.revealed_by for s in SCENARIOS.values())


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
    assert times.min() >= START and times.max() < START + pd.Timedelta(days=DAYS)


def device_number(fingerprints: pd.Series) -> pd.Series:
    return fingerprints.str.slice(4).astype(np.int64)


def test_scenarios_leave_the_signatures_they_document(joined):
    legit = joined[joined["is_fraud"] == 0]
    by = {name: joined[joined["fraud_scenario"] == name].assign(ts=lambda f: pd.to_datetime(f["timestamp"])) for name in SCENARIO_SHARE}
    usual = legit.groupby("customer_id")["amount"].median()

    # Compromised terminals: every payment at few terminals within windows of 14-35 days, at ordinary amounts.
    terminal = by["compromised_terminal"]
    assert terminal["terminal_id"].nunique() < 0.1 * len(terminal)
    spans = terminal.groupby("terminal_id")["ts"].agg(lambda t: (t.max() - t.min()).days)
    assert spans.max() <= 35
    assert 0.6 < terminal["amount"].median() / legit["amount"].median() < 1.6

    # Compromised cards: well above the card's own usual amount.
    card = by["compromised_card"]
    assert (card["amount"] / card["customer_id"].map(usual)).median() > 2.5

    # Card testing: tiny payments from a fraudster's device, then a large one on the same device.
    testing = by["card_testing"]
    assert (device_number(testing["device_fingerprint"]) >= FRAUDSTER_DEVICES).all()
    episodes = testing.sort_values("ts").groupby("device_fingerprint")
    assert (episodes["amount"].apply(lambda a: (a.iloc[:-1] <= 3).all() and a.iloc[-1] > 3)).mean() > 0.95
    assert (episodes["ts"].agg(lambda t: t.max() - t.min()) < pd.Timedelta(hours=8)).all()

    # Account takeover: never the customer's own device, but mostly near home, at home, by day.
    takeover = by["account_takeover"]
    assert (device_number(takeover["device_fingerprint"]) >= FRAUDSTER_DEVICES).all()
    assert (device_number(legit["device_fingerprint"]) < FRAUDSTER_DEVICES).all()
    assert 0.55 < (takeover["location_distance_km"] < 100).mean()
    assert takeover["is_international"].mean() < 0.35
    assert takeover["ts"].dt.hour.between(1, 4).mean() < 0.35


def test_no_single_field_gives_the_fraud_away(joined):
    """The old data's giveaways (amounts of 800+, far away and abroad) catch little of it now,
    and legitimate customers show the same signs: new devices, big purchases, travel."""
    fraud, legit = joined[joined["is_fraud"] == 1], joined[joined["is_fraud"] == 0]
    blatant = lambda f: (f["amount"] >= 800) | ((f["location_distance_km"] > 150) & (f["is_international"] == 1))  # noqa: E731
    assert blatant(fraud).mean() < 0.25
    assert blatant(legit).sum() > blatant(fraud).sum()
    first_use = legit.assign(device=legit["device_fingerprint"]).groupby(["customer_id", "device"])["timestamp"].transform("min")
    later_new_devices = (legit["timestamp"] == first_use) & (legit.groupby("customer_id")["timestamp"].transform("min") < first_use)
    assert later_new_devices.sum() > 0.5 * len(joined[joined["fraud_scenario"] == "account_takeover"])


def test_labels_arrive_within_the_label_delay(joined):
    delay = pd.to_datetime(joined["label_available_at"]) - pd.to_datetime(joined["timestamp"])
    fraud = joined["is_fraud"] == 1
    assert (delay[fraud] >= pd.Timedelta(days=1)).all() and (delay[fraud] <= pd.Timedelta(days=LABEL_DELAY_DAYS)).all()
    assert (delay[~fraud] == pd.Timedelta(days=LABEL_DELAY_DAYS)).all()  # settled once no chargeback came
    slower = generate(2_000, seed=3, label_delay_days=30).labels
    assert (pd.to_datetime(slower["label_available_at"]).max() - pd.to_datetime(generate(2_000, seed=3).transactions["timestamp"]).max()) == pd.Timedelta(days=30)


def test_time_since_last_matches_each_customers_history(data):
    tx = data.transactions.assign(ts=pd.to_datetime(data.transactions["timestamp"]))
    for _, history in list(tx.groupby("customer_id"))[:50]:
        gaps = history["ts"].diff().dt.total_seconds().div(3600).round(2).iloc[1:]
        assert np.allclose(gaps.to_numpy(), history["time_since_last_txn_hours"].iloc[1:].to_numpy(), atol=0.011)


@pytest.mark.parametrize("kwargs", [{"n_transactions": 0}, {"n_transactions": 10, "fraud_rate": 0.5}, {"n_transactions": 10, "days": 0}, {"n_transactions": 10, "label_delay_days": 0}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        generate(**kwargs)


def test_text_made_a_block_of_rows_at_a_time_is_the_same_across_block_edges(monkeypatch):
    whole = generate(3_000, seed=5)
    monkeypatch.setattr(transactions, "TEXT_BLOCK_ROWS", 1_000)  # three blocks, and a short last one below
    pd.testing.assert_frame_equal(generate(3_000, seed=5).transactions, whole.transactions)
    monkeypatch.setattr(transactions, "TEXT_BLOCK_ROWS", 1_024)
    pd.testing.assert_frame_equal(generate(3_000, seed=5).labels, whole.labels)


@pytest.mark.parametrize("major_high", [60 * 86_400, 2**50])  # the packed sort, and keys too wide for it
def test_rows_sort_by_major_then_minor_then_position(major_high):
    rng = np.random.default_rng(4)
    major, minor = rng.integers(0, major_high, 5_000), rng.integers(0, 40, 5_000)
    major[:100], minor[:100] = major[100], minor[100]  # ties keep their order
    assert np.array_equal(transactions._sort_by(major, minor), np.lexsort((minor, major)))
