"""Evaluation as a fraud team measures it, and the default data's model: good, not perfect."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from processing import evaluation, metrics
from labkit.transactions import SCENARIOS, generate
from localaws.offline_lab import step_arguments
from localaws.sagemaker import builtin_xgboost
from processing import feature_job
from processing.training import HYPERPARAMETERS

ROOT = Path(__file__).resolve().parent.parent


def ids_table(days: list[str], cards: list[str], fraud: list[int], blocked: list[int] | None = None, scenario: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "transaction_id": [f"T{i}" for i in range(len(days))],
        "timestamp": [f"{d} 12:00:00+00:00" for d in days],
        "customer_id": cards,
        "is_fraud": fraud,
        "fraud_scenario": scenario or ["card_testing" if f else "none" for f in fraud],
        "card_known_compromised": blocked or [0] * len(days),
    })


def test_card_precision_ranks_cards_per_day_and_knows_its_ceiling():
    # Day 1: cards A (fraud), B, C; A scores highest. Day 2: D (fraud) ranked second, E first.
    ids = ids_table(["2026-09-01"] * 4 + ["2026-09-02"] * 2, ["A", "A", "B", "C", "D", "E"], [1, 0, 0, 0, 1, 0])
    scored = evaluation.ScoredDays.from_ids(ids, np.array([0.9, 0.1, 0.5, 0.2, 0.4, 0.6]))
    assert evaluation.card_precision_at_k(scored, 1) == {"card_precision": 0.5, "best_possible": 1.0}
    assert evaluation.card_precision_at_k(scored, 2) == {"card_precision": 0.5, "best_possible": 0.5}


def test_cards_known_compromised_before_the_day_are_removed():
    ids = ids_table(["2026-09-01", "2026-09-01", "2026-09-02"], ["A", "B", "A"], [1, 0, 1], blocked=[0, 0, 1])
    scored = evaluation.ScoredDays.from_ids(ids, np.array([0.9, 0.1, 0.8]))
    assert list(scored.card) == ["A", "B"] and scored.y.sum() == 1
    kept = evaluation.ScoredDays.from_ids(ids, np.array([0.9, 0.1, 0.8]), drop_known_compromised=False)
    assert len(kept.y) == 3


def test_the_budget_threshold_sends_about_k_cards_a_day():
    rng = np.random.default_rng(1)
    days = np.repeat([f"2026-09-{d:02d}" for d in range(1, 21)], 300)
    ids = ids_table(list(days), [f"C{i % 250}" for i in range(len(days))], list((rng.uniform(size=len(days)) < 0.02).astype(int)))
    scored = evaluation.ScoredDays.from_ids(ids, rng.uniform(size=len(days)))
    threshold = evaluation.budget_threshold(scored, 10)
    assert 8 <= evaluation.alerts_per_day(scored, threshold) <= 12


def test_intervals_are_reproducible_and_hold_the_estimate():
    rng = np.random.default_rng(2)
    n = 6000
    y = (rng.uniform(size=n) < 0.03).astype(int)
    days = np.repeat([f"2026-09-{d:02d}" for d in range(1, 31)], n // 30)
    ids = ids_table(list(days), [f"C{i}" for i in range(n)], list(y))
    scored = evaluation.ScoredDays.from_ids(ids, y * 0.3 + rng.uniform(size=n))
    first, again = evaluation.intervals(scored, 20, 0.9), evaluation.intervals(scored, 20, 0.9)
    assert first == again
    estimate = evaluation.headline(scored, 20, 0.9)
    for name in ("pr_auc", "roc_auc", "card_precision", "recall_at_threshold"):
        low, high = first[name]
        assert low <= estimate[name] <= high and high - low > 0, name
    recall = evaluation.recall_by_scenario(scored, 0.9)["card_testing"]  # every fraud of ids_table's
    low, high = first["recall_card_testing"]
    assert low <= recall["caught"] / recall["fraud"] <= high


# --- the default data, through the feature job, the built-in algorithm and step 04 -----------


def load_step(script: str):
    spec = importlib.util.spec_from_file_location("step04", ROOT / "lab_scripts" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def default_lab(tmp_path_factory):
    """The default lab's data (100,000 payments, seed 7) as the job writes it, all labels known."""
    root = tmp_path_factory.mktemp("default-lab")
    data = generate(100_000, seed=7)
    (root / "raw").mkdir()
    (root / "labels").mkdir()
    (root / "raw" / "part.json").write_text(data.transactions.to_json(orient="records", lines=True))
    data.labels.to_csv(root / "labels" / "labels.csv", index=False)
    feature_job.main(["--raw", str(root / "raw"), "--labels", str(root / "labels"), "--output", str(root / "features"),
                      "--quarantine", str(root / "quarantine"), "--as-of", "2027-01-01T00:00:00"])
    return root / "features"


def read(features: Path, name: str, header: bool) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, header=0 if header else None) for p in sorted((features / name).glob("*.csv"))], ignore_index=True)


def train(features: Path, model_dir: Path, shuffle_seed: int | None = None) -> xgb.Booster:
    channels = {"train": features / "train", "validation": features / "validation"}
    if shuffle_seed is not None:  # the same rows with their labels shuffled among them
        shuffled = model_dir / "shuffled"
        for name, path in channels.items():
            frame = read(features, name, header=False)
            frame[0] = np.random.default_rng(shuffle_seed).permutation(frame[0].to_numpy())
            (shuffled / name).mkdir(parents=True)
            frame.to_csv(shuffled / name / "part.csv", header=False, index=False)
            channels[name] = shuffled / name
    train_rows = read(features, "train", header=False)[0]
    hyperparameters = {**HYPERPARAMETERS, "scale_pos_weight": f"{(train_rows == 0).sum() / train_rows.sum():.2f}"}
    builtin_xgboost.train(hyperparameters, channels, model_dir, None, lambda line: None)
    booster = xgb.Booster()
    booster.load_model(bytearray((model_dir / "xgboost-model").read_bytes()))
    return booster


@pytest.fixture(scope="module")
def default_report(default_lab, tmp_path_factory):
    booster = train(default_lab, tmp_path_factory.mktemp("model"))
    k = int(step_arguments("04_evaluate_and_register", 100_000)[1])
    return evaluation.evaluate(booster, read(default_lab, "validation", False), read(default_lab, "test", False),
                         read(default_lab, "validation-ids", True), read(default_lab, "test-ids", True), k)


def test_the_default_lab_model_is_good_not_perfect_and_beats_the_rule(default_report):
    model, rule = default_report["model"], default_report["rule_baseline"]
    assert 0.55 <= model["pr_auc"] <= 0.85
    assert model["interval"]["pr_auc"][1] < 0.95  # not "fraud detection is trivial"
    assert model["pr_auc"] > rule["pr_auc"] + 0.3
    assert model["card_precision"] > rule["card_precision"]
    assert model["card_precision"] <= model["best_possible"]
    assert default_report["best_iteration"] is not None and default_report["test_fraud"] >= 50


def test_each_scenario_is_reported_and_some_are_hard(default_report):
    recall = {name: r["caught"] / r["fraud"] for name, r in default_report["recall_by_scenario"].items()}
    assert set(recall) == set(SCENARIOS)
    assert all(value > 0 for value in recall.values())
    assert min(recall.values()) < 0.6 < max(recall.values())


def test_shuffled_labels_give_the_base_rate(default_lab, default_report, tmp_path):
    """Trained on the same rows with shuffled labels, the model ranks no better than chance:
    nothing in the features carries the label itself."""
    booster = train(default_lab, tmp_path, shuffle_seed=3)
    test, ids = read(default_lab, "test", False), read(default_lab, "test-ids", True)
    scored = evaluation.ScoredDays.from_ids(ids, booster.predict(xgb.DMatrix(test.iloc[:, 1:].to_numpy())))
    base_rate = scored.y.mean()
    assert metrics.average_precision(scored.y, scored.score) < 3 * base_rate < 0.1 * default_report["model"]["pr_auc"]
