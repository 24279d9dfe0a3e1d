"""Evaluation the way a fraud team measures a model: per day, per card, within a budget.

Investigators can review a fixed number of cards a day (the alert budget, k). So what
matters is how many of the day's k highest-scored cards are really compromised: card
precision at top-k, averaged over days (Fraud Detection Handbook, Le Borgne et al.,
chapter 4). Cards already known to be compromised before a day (a chargeback arrived)
are blocked by then: a fraud team would not score them, so they are removed from that
day. Every figure comes with a bootstrap interval over days, since days, not payments,
are the independent units (a compromised terminal or card spans many payments).

One module for step 04 (which evaluates on your machine) and the pipeline's evaluation
Processing job (evaluation_job.py, in the XGBoost image), so the gate judges a model by
the same figures either way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

if __package__:  # imported from the kit: processing.evaluation
    from processing import metrics
    from processing.features import FEATURE_COLUMNS
    from processing.model_artifact import booster_bytes
else:  # the Processing container's code dir is flat
    import metrics
    from features import FEATURE_COLUMNS
    from model_artifact import booster_bytes

BOOTSTRAP_SAMPLES = 300
INTERVAL = (2.5, 97.5)  # a 95 % percentile interval


@dataclass(frozen=True)
class ScoredDays:
    """One evaluation set, scored: per payment its day, card, label, scenario and score."""

    day: np.ndarray  # datetime64[D]
    card: np.ndarray
    y: np.ndarray  # 0/1
    scenario: np.ndarray
    score: np.ndarray

    @classmethod
    def from_ids(cls, ids: pd.DataFrame, score: np.ndarray, drop_known_compromised: bool = True) -> ScoredDays:
        """From a *-ids table of the feature job (same row order as the set) and its scores."""
        keep = ~ids["card_known_compromised"].astype(bool).to_numpy() if drop_known_compromised else np.ones(len(ids), bool)
        day = pd.to_datetime(ids["timestamp"], utc=True).dt.tz_localize(None).to_numpy("datetime64[D]")
        return cls(day[keep], ids["customer_id"].to_numpy()[keep], ids["is_fraud"].to_numpy(int)[keep],
                   ids["fraud_scenario"].to_numpy()[keep], np.asarray(score, float)[keep])

    def days(self) -> list[np.ndarray]:
        """Row indices of each day, in day order."""
        order = np.argsort(self.day, kind="stable")
        cuts = np.flatnonzero(np.diff(self.day[order].astype(np.int64))) + 1
        return np.split(order, cuts)


def card_days(scored: ScoredDays) -> pd.DataFrame:
    """One row per (day, card): the card's highest score that day and whether any of its
    payments that day was fraud."""
    frame = pd.DataFrame({"day": scored.day, "card": scored.card, "score": scored.score, "fraud": scored.y})
    return frame.groupby(["day", "card"], sort=False).agg(score=("score", "max"), fraud=("fraud", "max")).reset_index()


def daily_card_precision(scored: ScoredDays, k: int) -> pd.DataFrame:
    """Per day: compromised cards among the day's k highest-scored cards / k ("precision"),
    and the most any model could reach that day (its compromised cards, at most k, / k)."""
    cards = card_days(scored)
    ranked = cards.sort_values(["day", "score"], ascending=[True, False], kind="stable")
    caught = ranked.groupby("day", sort=True).head(k).groupby("day")["fraud"].sum()
    possible = cards.groupby("day")["fraud"].sum().clip(upper=k)
    return pd.DataFrame({"precision": caught / k, "best_possible": possible / k}).sort_index()


def card_precision_at_k(scored: ScoredDays, k: int) -> dict[str, float]:
    """Card precision at top-k, the mean over days, and its best possible value."""
    daily = daily_card_precision(scored, k)
    return {"card_precision": float(daily["precision"].mean()), "best_possible": float(daily["best_possible"].mean())}


def budget_threshold(scored: ScoredDays, k: int) -> float:
    """The score of the k-th highest-scored card on the median day: alerting at or above it
    sends investigators about k cards a day. Choose it on validation, apply it on test."""
    cards = card_days(scored)
    kth = cards.sort_values("score", ascending=False, kind="stable").groupby("day").nth(k - 1)["score"]
    if kth.empty:  # fewer than k cards on every day: alert on them all
        return float(cards["score"].min())
    return float(kth.median())


def alerts_per_day(scored: ScoredDays, threshold: float) -> float:
    cards = card_days(scored)
    return float((cards["score"] >= threshold).groupby(cards["day"]).sum().mean())


def headline(scored: ScoredDays, k: int, threshold: float) -> dict[str, float]:
    """The figures a fraud team reads, for one scored set."""
    at = metrics.at_threshold(scored.y, scored.score, threshold)
    return {
        "pr_auc": metrics.average_precision(scored.y, scored.score),
        "roc_auc": metrics.roc_auc(scored.y, scored.score),
        **card_precision_at_k(scored, k),
        "recall_at_threshold": at["recall"],
        "precision_at_threshold": at["precision"],
    }


def intervals(scored: ScoredDays, k: int, threshold: float, seed: int = 7, samples: int = BOOTSTRAP_SAMPLES) -> dict[str, list[float]]:
    """95 % interval of each headline figure and of each fraud scenario's recall
    ("recall_<scenario>") over `samples` resamplings of the days with replacement (a
    resample repeats some days and leaves others out)."""
    days = scored.days()
    daily = daily_card_precision(scored, k)["precision"].to_numpy()  # in day order, as `days`
    rng = np.random.default_rng(seed)
    scenarios = sorted(set(scored.scenario[scored.y == 1]))
    draws: dict[str, list[float]] = {
        name: [] for name in ("pr_auc", "roc_auc", "card_precision", "recall_at_threshold", "precision_at_threshold", *(f"recall_{s}" for s in scenarios))
    }
    for _ in range(samples):
        chosen = rng.integers(0, len(days), len(days))
        rows = np.concatenate([days[i] for i in chosen])
        y, score = scored.y[rows], scored.score[rows]
        at = metrics.at_threshold(y, score, threshold)
        draws["pr_auc"].append(metrics.average_precision(y, score))
        draws["roc_auc"].append(metrics.roc_auc(y, score))
        draws["card_precision"].append(float(daily[chosen].mean()))
        draws["recall_at_threshold"].append(at["recall"] if y.any() else np.nan)
        draws["precision_at_threshold"].append(at["precision"] if (score >= threshold).any() else np.nan)
        caught, scenario = score >= threshold, scored.scenario[rows]
        for name in scenarios:
            mine = (y == 1) & (scenario == name)
            draws[f"recall_{name}"].append(caught[mine].mean() if mine.any() else np.nan)
    return {name: [float(np.nanpercentile(v, INTERVAL[0])), float(np.nanpercentile(v, INTERVAL[1]))] for name, v in draws.items()}


def with_interval(value: float, interval: tuple[float, float] | list[float], digits: int = 3) -> str:
    """"0.674 [0.51, 0.80]": a figure and its 95 % interval, as step 04 and the report show them."""
    low, high = interval
    return f"{value:.{digits}f} [{low:.2f}, {high:.2f}]"


def recall_by_scenario(scored: ScoredDays, threshold: float) -> dict[str, dict[str, int]]:
    """Per fraud scenario: fraudulent payments at or above the threshold, of how many."""
    fraud = scored.y == 1
    result = {}
    for name in sorted(set(scored.scenario[fraud])):
        mine = fraud & (scored.scenario == name)
        result[str(name)] = {"caught": int((scored.score[mine] >= threshold).sum()), "fraud": int(mine.sum())}
    return result


def load_booster(training_artifact: bytes, threads: int) -> xgb.Booster:
    """The trained booster from model.tar.gz, loaded as the serving container loads it,
    predicting on `threads` threads (the cores this process has to itself)."""
    booster = xgb.Booster()
    booster.load_model(bytearray(booster_bytes(training_artifact)))
    booster.set_param("nthread", threads)
    return booster


def best_iterations(booster: xgb.Booster) -> tuple[int, int]:
    """The iteration_range up to early stopping's best round (all rounds without one)."""
    best = booster.attr("best_iteration")
    return (0, int(best) + 1) if best is not None else (0, 0)


def evaluate(booster: xgb.Booster, validation: pd.DataFrame, test: pd.DataFrame, validation_ids: pd.DataFrame, test_ids: pd.DataFrame, k: int) -> dict:
    """The model and two baselines on the test period, the alert threshold chosen on
    validation to send about k cards a day. `validation`/`test` are the feature job's sets
    (label first, no header), `*_ids` its id tables in the same row order."""
    rounds = best_iterations(booster)
    score_val = booster.predict(xgb.DMatrix(validation.iloc[:, 1:].to_numpy()), iteration_range=rounds)
    score_test = booster.predict(xgb.DMatrix(test.iloc[:, 1:].to_numpy()), iteration_range=rounds)
    # The rule a fraud analyst would write first: large amounts are suspicious.
    amount = {name: np.expm1(frame[1 + FEATURE_COLUMNS.index("log_amount")].to_numpy()) for name, frame in (("validation", validation), ("test", test))}

    def scored_pair(val_score: np.ndarray, test_score: np.ndarray) -> tuple[ScoredDays, float]:
        tst = ScoredDays.from_ids(test_ids, test_score)
        return tst, budget_threshold(ScoredDays.from_ids(validation_ids, val_score), k)

    tst, threshold = scored_pair(score_val, score_test)
    rule_tst, rule_threshold = scored_pair(amount["validation"], amount["test"])
    model = {
        **headline(tst, k, threshold),
        **metrics.at_threshold(tst.y, tst.score, threshold),
        "alerts_per_day": alerts_per_day(tst, threshold),
        "interval": intervals(tst, k, threshold),
    }
    rule = {
        "description": f"fraud if amount >= {rule_threshold:.2f}",
        **headline(rule_tst, k, rule_threshold),
        **metrics.at_threshold(rule_tst.y, rule_tst.score, rule_threshold),
        "interval": intervals(rule_tst, k, rule_threshold),
    }
    majority = {"description": "never fraud", "pr_auc": float(tst.y.mean()), **metrics.at_threshold(tst.y, np.zeros_like(tst.score), 1.0)}
    blocked = test_ids["card_known_compromised"].astype(bool)
    days = tst.days()
    return {
        "test_rows": int(len(tst.y)),
        "test_fraud": int(tst.y.sum()),
        "test_days": len(days),
        "cards_per_day": float(len(card_days(tst)) / max(len(days), 1)),
        "removed_known_compromised": {"rows": int(blocked.sum()), "fraud": int(test_ids["is_fraud"][blocked].sum())},
        "alerts_per_day_budget": k,
        "best_iteration": rounds[1] - 1 if rounds[1] else None,
        "model": model,
        "rule_baseline": rule,
        "majority_baseline": majority,
        "recall_by_scenario": recall_by_scenario(tst, threshold),
        "curves": {"y": tst.y, "score": tst.score},
    }


def quality_report(report: dict) -> dict:
    """evaluation.json: the shape SageMaker's model registry and Studio render (Model Monitor
    model quality), the kit's own figures, and the registration gate's inputs (`gate`: the
    pipeline's Condition step reads pr_auc_lift with JsonGet)."""
    m = report["model"]
    c = m["confusion_matrix"]
    return {
        "binary_classification_metrics": {
            "confusion_matrix": {"0": {"0": c["tn"], "1": c["fp"]}, "1": {"0": c["fn"], "1": c["tp"]}},
            "recall": {"value": m["recall"], "standard_deviation": "NaN"},
            "precision": {"value": m["precision"], "standard_deviation": "NaN"},
            "accuracy": {"value": m["accuracy"], "standard_deviation": "NaN"},
            "f1": {"value": m["f1"], "standard_deviation": "NaN"},
            "auc": {"value": m["roc_auc"], "standard_deviation": "NaN"},
            "pr_auc": {"value": m["pr_auc"], "standard_deviation": "NaN"},
        },
        "gate": gate(report),
        "fraudlab": {k: v for k, v in report.items() if k != "curves"},
    }


def gate(report: dict) -> dict[str, float]:
    """What the registration gate compares: the model's PR-AUC lift over the amount rule
    (to 6 decimals: the pipeline's Fail step prints it as written)."""
    model_pr_auc, rule_pr_auc = report["model"]["pr_auc"], report["rule_baseline"]["pr_auc"]
    return {"pr_auc": model_pr_auc, "rule_pr_auc": rule_pr_auc, "pr_auc_lift": round(model_pr_auc - rule_pr_auc, 6)}


def approval_decision(report: dict, margin: float) -> tuple[str, str]:
    """Approve only a model whose PR-AUC beats the amount rule by `margin` (step 04; the
    pipeline's Condition step applies the same test to gate.pr_auc_lift)."""
    figures = gate(report)
    if figures["pr_auc_lift"] >= margin:
        return "Approved", f"PR-AUC {figures['pr_auc']:.3f} beats the rule's {figures['rule_pr_auc']:.3f} by {figures['pr_auc_lift']:.3f} >= {margin}"
    return "PendingManualApproval", f"PR-AUC lift over the rule is {figures['pr_auc_lift']:.3f} < {margin}: review it by hand before deploying"
