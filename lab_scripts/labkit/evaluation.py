"""Evaluation the way a fraud team measures a model: per day, per card, within a budget.

Investigators can review a fixed number of cards a day (the alert budget, k). So what
matters is how many of the day's k highest-scored cards are really compromised: card
precision at top-k, averaged over days (Fraud Detection Handbook, Le Borgne et al.,
chapter 4). Cards already known to be compromised before a day (a chargeback arrived)
are blocked by then: a fraud team would not score them, so they are removed from that
day. Every figure comes with a bootstrap interval over days, since days, not payments,
are the independent units (a compromised terminal or card spans many payments).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from labkit import metrics

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
