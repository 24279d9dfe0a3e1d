"""The feature transformation, shared by training (processing/) and serving (inference/).

One module on purpose: computing features twice is how training/serving skew happens.
Every function is pure, DataFrame in, DataFrame out; I/O lives in the job around it.

Input: validated transactions (the stream's fields, `timestamp` as tz-aware UTC) and,
for terminal risk, labels with `is_fraud`. Output: FEATURE_COLUMNS, all numeric, no NaN,
in the order the built-in XGBoost CSV format expects them (after the label).

Time discipline: customer history uses only payments strictly before the current one;
terminal fraud rates use only transactions older than the label delay, whose labels
(chargebacks arrive within it) are all known by then. The delay is the data's: the
feature job takes it as a parameter, writes it into the feature schema, and whoever
computes features for serving reads it from there.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import pandas as pd

CATEGORIES = ("grocery", "retail", "restaurant", "fuel", "electronics", "travel", "online")
WINDOWS_DAYS = (1, 7, 30)
# The lab data's chargeback delay (the generator, lab_scripts/labkit/transactions.py, uses
# this one): the default of the feature job's --label-delay-days. Older labels are all known.
LABEL_DELAY_DAYS = 7
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")

BASE_FEATURES = [
    "log_amount",
    "hour_of_day",
    "is_weekend",
    "is_night",
    "is_international",
    "location_distance_km",
    "time_since_last_txn_hours",
    *(f"category_{c}" for c in CATEGORIES),
]
CUSTOMER_FEATURES = [
    *(f"customer_txn_count_{w}d" for w in WINDOWS_DAYS),
    *(f"customer_mean_amount_{w}d" for w in WINDOWS_DAYS),
    "amount_to_customer_mean_30d",
    "device_is_new",
]
TERMINAL_FEATURES = [f"terminal_fraud_rate_{w}d" for w in WINDOWS_DAYS]
FEATURE_COLUMNS = BASE_FEATURES + CUSTOMER_FEATURES + TERMINAL_FEATURES

DESCRIPTIONS = {
    "log_amount": "ln(1 + amount)",
    "hour_of_day": "UTC hour of the payment, 0-23",
    "is_weekend": "1 on Saturday or Sunday (UTC)",
    "is_night": "1 between 00:00 and 05:59 UTC",
    "is_international": "1 if paid abroad",
    "location_distance_km": "distance from the customer's home to the terminal",
    "time_since_last_txn_hours": "hours since the customer's previous payment",
    **{f"category_{c}": f"1 if merchant_category is {c}" for c in CATEGORIES},
    **{f"customer_txn_count_{w}d": f"customer's payments in the {w} day(s) before this one" for w in WINDOWS_DAYS},
    **{f"customer_mean_amount_{w}d": f"mean amount of the customer's payments in those {w} day(s) (0 if none)" for w in WINDOWS_DAYS},
    "amount_to_customer_mean_30d": "amount / customer's 30-day mean (1 if no history)",
    "device_is_new": "1 if the customer never used this device before",
    **{
        f"terminal_fraud_rate_{w}d": f"fraud share at the terminal over {w} day(s), ending one label delay before the payment"
        for w in WINDOWS_DAYS
    },
}


def transaction_features(tx: pd.DataFrame) -> pd.DataFrame:
    """Features of each payment on its own. Needs amount, timestamp, merchant_category,
    is_international, location_distance_km, time_since_last_txn_hours."""
    ts = tx["timestamp"]
    out = pd.DataFrame(index=tx.index)
    out["log_amount"] = np.log1p(tx["amount"].astype(float))
    out["hour_of_day"] = ts.dt.hour
    out["is_weekend"] = (ts.dt.dayofweek >= 5).astype(int)
    out["is_night"] = (ts.dt.hour < 6).astype(int)
    out["is_international"] = tx["is_international"].astype(int)
    out["location_distance_km"] = tx["location_distance_km"].astype(float)
    out["time_since_last_txn_hours"] = tx["time_since_last_txn_hours"].astype(float)
    for category in CATEGORIES:
        # An unknown category is all zeros: the model sees "none of the known ones".
        out[f"category_{category}"] = (tx["merchant_category"] == category).astype(int)
    return out


def customer_features(tx: pd.DataFrame) -> pd.DataFrame:
    """Spending history per customer over 1/7/30 days, strictly before each payment."""
    out = pd.DataFrame(index=tx.index)
    seconds = _seconds(tx["timestamp"])
    amounts = tx["amount"].to_numpy(float)
    windows = _TimeWindows(tx["customer_id"], seconds)
    for w in WINDOWS_DAYS:
        count, total = windows.sums(amounts, lag=0, width=w * 86400, include_now=False)
        out[f"customer_txn_count_{w}d"] = count
        out[f"customer_mean_amount_{w}d"] = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    mean30 = out["customer_mean_amount_30d"].to_numpy()
    out["amount_to_customer_mean_30d"] = np.divide(amounts, mean30, out=np.ones_like(amounts), where=mean30 > 0)
    # New device: the first time (in time order) this customer pays with this device.
    devices = pd.factorize(tx["device_fingerprint"])[0].astype(np.int64)
    pair = windows.codes * (devices.max() + 1) + devices
    in_time_order = np.argsort(seconds, kind="stable")
    _, first = np.unique(pair[in_time_order], return_index=True)
    device_is_new = np.zeros(len(tx), dtype=int)
    device_is_new[in_time_order[first]] = 1
    out["device_is_new"] = device_is_new
    return out


def terminal_windows(tx: pd.DataFrame) -> _TimeWindows:
    """The payments grouped by terminal in time order: what terminal_features needs besides labels."""
    return _TimeWindows(tx["terminal_id"], _seconds(tx["timestamp"]))


def terminal_features(
    tx: pd.DataFrame, is_fraud: pd.Series, label_delay_days: float = LABEL_DELAY_DAYS, windows: _TimeWindows | None = None,
) -> pd.DataFrame:
    """Fraud share per terminal over 1/7/30 days, ending `label_delay_days` before each payment.

    `is_fraud` aligns with `tx` (0/1; unknown labels count as 0, which only happens for
    payments younger than the lag and so never enters a window); `windows`: terminal_windows(tx),
    if made already."""
    out = pd.DataFrame(index=tx.index)
    fraud = is_fraud.reindex(tx.index).fillna(0).to_numpy(float)
    windows = windows if windows is not None else terminal_windows(tx)
    for w in WINDOWS_DAYS:
        count, frauds = windows.sums(fraud, lag=int(label_delay_days * 86400), width=w * 86400, include_now=True)
        out[f"terminal_fraud_rate_{w}d"] = np.divide(frauds, count, out=np.zeros_like(frauds), where=count > 0)
    return out


def build_features(
    tx: pd.DataFrame, is_fraud: pd.Series | Callable[[], pd.Series], threads: int = 1, label_delay_days: float = LABEL_DELAY_DAYS,
) -> pd.DataFrame:
    """All FEATURE_COLUMNS for `tx`, given its history and the labels known for it;
    `label_delay_days` as the feature schema records it (the terminal windows' lag).

    With `threads=2` the payment and customer families are computed beside the rest (numpy
    releases the GIL in its sorts and searches): for the batch job, never for one request.
    `is_fraud` may be a function that returns the labels: it is called here while those
    families, which need none, are computed on the pool (the job joins its labels meanwhile),
    and so is the terminals' grouping, the part of their family that needs no labels."""
    with ThreadPoolExecutor(threads) as pool:
        customer = pool.submit(customer_features, tx)
        payment = pool.submit(transaction_features, tx) if threads > 1 else None
        windows = pool.submit(terminal_windows, tx) if threads > 1 else None
        labels = is_fraud() if callable(is_fraud) else is_fraud
        terminal = terminal_features(tx, labels, label_delay_days, windows.result() if windows else None)
        parts = (payment.result() if payment else transaction_features(tx), terminal, customer.result())
    columns = {name: part[name] for part in parts for name in part.columns}
    # One float block, column-major: no concat/consolidation copies, and each column of it
    # is contiguous for whoever reads the features column by column.
    matrix = np.empty((len(tx), len(FEATURE_COLUMNS)), order="F")
    for position, name in enumerate(FEATURE_COLUMNS):
        matrix[:, position] = columns[name].to_numpy(float)
    return pd.DataFrame(matrix, index=tx.index, columns=FEATURE_COLUMNS, copy=False)


def own_history(tx: pd.DataFrame, rows: pd.Index) -> pd.DataFrame:
    """The payments of `tx` that the features of `rows` depend on: every payment of their
    customers and of their terminals (a payment's own features need nothing else, its
    customer's family only that customer's payments, its terminal's only that terminal's).
    build_features over it gives `rows` the values it gives them over all of `tx` (to the
    float rounding of the window sums, which run over whatever rows they are given)."""
    chosen = tx.loc[rows]
    return tx[tx["customer_id"].isin(chosen["customer_id"].unique()) | tx["terminal_id"].isin(chosen["terminal_id"].unique())]


def _seconds(timestamps: pd.Series) -> np.ndarray:
    """Whole seconds since the Unix epoch, whatever the Series' time unit."""
    return ((timestamps - EPOCH) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


class _TimeWindows:
    """Sums over time windows per group, vectorized: one sort, then binary searches.

    Rows are keyed by (group, time) in one int64 so that a window never crosses groups;
    queries are issued in key order, which keeps the searches cache-friendly.
    """

    def __init__(self, groups: pd.Series, seconds: np.ndarray) -> None:
        self.codes = pd.factorize(groups)[0].astype(np.int64)
        self.offset = seconds - seconds.min()
        self.order = np.argsort(self.codes * (self.offset.max() + 1) + self.offset, kind="stable")

    def sums(self, values: np.ndarray, *, lag: int, width: int, include_now: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per row: count and value sum of the same group's rows in (t - lag - width, t - lag]
        (with lag 0 and include_now False: (t - width, t), strictly before the row)."""
        span = np.int64(self.offset.max() + lag + width + 2)
        base = self.offset + lag + width + 1  # keeps every query inside its group's key range
        keys = (self.codes * span + base)[self.order]
        cumulative = np.concatenate([[0.0], np.cumsum(values[self.order])])
        end = keys - lag
        hi = np.searchsorted(keys, end, side="right" if include_now else "left")
        lo = np.searchsorted(keys, end - width, side="right")
        count, total = np.empty(len(keys)), np.empty(len(keys))
        count[self.order] = hi - lo
        total[self.order] = cumulative[hi] - cumulative[lo]
        return count, total
