"""Labelled card transactions: realistic enough to learn from, deterministic with a seed.

Customers live somewhere on a 500 x 500 km map and spend with their own habits (how
often, how much, which categories, which devices); terminals sit on the same map and a
customer mostly pays at terminals near home. Fraud is injected by four scenarios,
after the Fraud Detection Handbook (Le Borgne et al.) plus account takeover:

- ``large_amount``: a stolen card used for one unusually large purchase anywhere.
- ``compromised_terminal``: a skimmed terminal; every payment there for 28 days is fraud
  (visible only through the terminal's fraud history, i.e. delayed labels).
- ``compromised_card``: card details sold; for 14 days a third of the customer's payments
  are fraud, 3-6x their usual amount.
- ``account_takeover``: a new device, far from home, often abroad and at night.

The stream records and the ground truth are separate tables, as in a bank: labels
(chargebacks) arrive days later, so later lab steps must join them and mind the delay.
Everything is vectorized: a million transactions take a few seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

MAP_KM = 500.0
CELL_KM = 50.0
CELLS_PER_SIDE = int(MAP_KM // CELL_KM)
START = pd.Timestamp("2026-10-01T00:00:00Z")

CATEGORIES = np.array(["grocery", "retail", "restaurant", "fuel", "electronics", "travel", "online"])
CATEGORY_WEIGHTS = np.array([0.30, 0.20, 0.17, 0.12, 0.07, 0.04, 0.10])
CATEGORY_AMOUNT_FACTOR = np.array([0.8, 1.0, 0.6, 0.9, 2.5, 3.0, 1.1])

# Share of all transactions each scenario turns into fraud, at the default 1.5 % rate.
SCENARIO_SHARE = {
    "large_amount": 0.20,
    "compromised_terminal": 0.25,
    "compromised_card": 0.30,
    "account_takeover": 0.25,
}
TERMINAL_COMPROMISE_DAYS = 28
CARD_COMPROMISE_DAYS = 14

STREAM_COLUMNS = [
    "transaction_id",
    "timestamp",
    "customer_id",
    "terminal_id",
    "amount",
    "merchant_category",
    "location_distance_km",
    "time_since_last_txn_hours",
    "is_international",
    "device_fingerprint",
]
LABEL_COLUMNS = ["transaction_id", "is_fraud", "fraud_scenario", "label_available_at"]


@dataclass(frozen=True)
class Dataset:
    transactions: pd.DataFrame  # STREAM_COLUMNS, sorted by timestamp: what Firehose carries
    labels: pd.DataFrame  # LABEL_COLUMNS: ground truth, delivered apart from the stream


def generate(
    n_transactions: int,
    *,
    seed: int = 7,
    days: int = 30,
    fraud_rate: float = 0.015,
    customers: int | None = None,
    terminals: int | None = None,
) -> Dataset:
    """Generate `n_transactions` over `days` days starting at START.

    `fraud_rate` is the target share of fraudulent transactions (0-0.2); the realised
    rate lands close to it (scenarios overlap a little). Same arguments, same data.
    """
    if n_transactions < 1:
        raise ValueError("n_transactions must be at least 1")
    if not 0.0 <= fraud_rate <= 0.2:
        raise ValueError("fraud_rate must be between 0 and 0.2")
    if days < 1:
        raise ValueError("days must be at least 1")
    rng = np.random.default_rng(seed)
    n_customers = customers or max(50, n_transactions // 60)
    n_terminals = terminals or max(CELLS_PER_SIDE**2, n_transactions // 100)

    people = _customers(rng, n_customers)
    places = _terminals(rng, n_terminals)
    txn = _legitimate_transactions(rng, n_transactions, days, people, places)
    scenario = np.full(n_transactions, "", dtype=object)
    _inject_fraud(rng, txn, scenario, people, places, days, fraud_rate)
    return _tables(rng, txn, scenario, people, places)


def _customers(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "x": rng.uniform(0, MAP_KM, n),
        "y": rng.uniform(0, MAP_KM, n),
        "mean_amount": rng.uniform(10, 150, n),
        "activity": rng.gamma(2.0, 1.0, n),  # relative transactions per day
        "device": rng.integers(10**7, 10**8, n),
        "category_tilt": rng.dirichlet(CATEGORY_WEIGHTS * 20, n),
    }


def _terminals(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    # One terminal in every cell first, so every customer has somewhere near home to pay.
    cells = np.concatenate([np.arange(CELLS_PER_SIDE**2), rng.integers(0, CELLS_PER_SIDE**2, n - CELLS_PER_SIDE**2)])
    order = np.argsort(cells, kind="stable")
    cells = cells[order]
    x = (cells % CELLS_PER_SIDE + rng.uniform(0, 1, n)) * CELL_KM
    y = (cells // CELLS_PER_SIDE + rng.uniform(0, 1, n)) * CELL_KM
    counts = np.bincount(cells, minlength=CELLS_PER_SIDE**2)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return {"x": x, "y": y, "cell_start": starts, "cell_count": counts}


def _cell_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    col = np.clip((x // CELL_KM).astype(int), 0, CELLS_PER_SIDE - 1)
    row = np.clip((y // CELL_KM).astype(int), 0, CELLS_PER_SIDE - 1)
    return row * CELLS_PER_SIDE + col


def _terminal_in_cell(rng: np.random.Generator, places: dict, cells: np.ndarray) -> np.ndarray:
    return places["cell_start"][cells] + (rng.uniform(0, 1, cells.size) * places["cell_count"][cells]).astype(int)


def _legitimate_transactions(rng, n, days, people, places) -> dict[str, np.ndarray]:
    n_customers = people["x"].size
    customer = rng.choice(n_customers, size=n, p=people["activity"] / people["activity"].sum())
    # Time of day: mostly daytime and evening, few payments between 1 and 6 am.
    hour_weights = np.array([2, 1, 1, 1, 1, 1, 2, 4, 6, 7, 8, 8, 9, 8, 8, 8, 8, 9, 9, 8, 7, 6, 4, 3], float)
    day = rng.integers(0, days, n)
    hour = rng.choice(24, size=n, p=hour_weights / hour_weights.sum())
    seconds = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)

    # Most payments near home; 3 % while travelling (anywhere on the map, legitimately).
    home_cell = _cell_of(people["x"][customer], people["y"][customer])
    travelling = rng.uniform(0, 1, n) < 0.03
    cell = np.where(travelling, rng.integers(0, CELLS_PER_SIDE**2, n), home_cell)
    terminal = _terminal_in_cell(rng, places, cell)

    # A category per payment from the customer's tilt: the first k with cumulative tilt > u
    # (0 if rounding leaves none), one small gather per category instead of an n x 7 matrix.
    cumulative = people["category_tilt"].cumsum(axis=1)
    u = rng.uniform(0, 1, n)
    below = np.zeros(n, dtype=np.int64)
    for k in range(len(CATEGORIES)):
        below += cumulative[:, k][customer] <= u
    category = np.where(below == len(CATEGORIES), 0, below)
    amount = people["mean_amount"][customer] * CATEGORY_AMOUNT_FACTOR[category] * rng.lognormal(0, 0.5, n)
    return {
        "customer": customer,
        "seconds": seconds,
        "terminal": terminal,
        "category": category,
        "amount": amount,
        "international": (travelling & (rng.uniform(0, 1, n) < 0.3)) | (rng.uniform(0, 1, n) < 0.01),
        "device": people["device"][customer] + np.where(rng.uniform(0, 1, n) < 0.05, 1, 0),  # a second phone
    }


def _inject_fraud(rng, txn, scenario, people, places, days, fraud_rate) -> None:
    n = scenario.size
    budget = {name: share * fraud_rate * n for name, share in SCENARIO_SHARE.items()}

    # 1. Large amounts: random payments become one big purchase.
    picks = _unlabelled(rng, scenario, int(round(budget["large_amount"])))
    txn["amount"][picks] = rng.uniform(800, 3000, picks.size)
    scenario[picks] = "large_amount"

    # 2. Compromised terminals: all payments at the terminal for 28 days from a random day.
    n_terminals = places["x"].size
    per_terminal_window = n / n_terminals * min(1.0, TERMINAL_COMPROMISE_DAYS / days)
    terminals = rng.choice(n_terminals, size=max(1, int(round(budget["compromised_terminal"] / max(per_terminal_window, 1e-9)))), replace=False)
    start = np.full(n_terminals, -1, dtype=np.int64)  # one window per compromised terminal, -1: none
    start[terminals] = _window_start(rng, days, TERMINAL_COMPROMISE_DAYS, terminals.size)
    at = start[txn["terminal"]]
    hit = (at >= 0) & (txn["seconds"] >= at) & (txn["seconds"] < at + TERMINAL_COMPROMISE_DAYS * 86400)
    scenario[hit & (scenario == "")] = "compromised_terminal"

    # 3. Compromised cards: for 14 days a third of the customer's payments, 3-6x the amount.
    n_customers = people["x"].size
    per_card_window = n / n_customers * min(1.0, CARD_COMPROMISE_DAYS / days) / 3
    cards = rng.choice(n_customers, size=min(n_customers, max(1, int(round(budget["compromised_card"] / max(per_card_window, 1e-9))))), replace=False)
    start = np.zeros(n_customers, dtype=np.int64)
    compromised = np.zeros(n_customers, dtype=bool)
    start[cards] = _window_start(rng, days, CARD_COMPROMISE_DAYS, cards.size)
    compromised[cards] = True
    c = txn["customer"]
    hit = compromised[c] & (txn["seconds"] >= start[c]) & (txn["seconds"] < start[c] + CARD_COMPROMISE_DAYS * 86400)
    hit &= (rng.uniform(0, 1, n) < 1 / 3) & (scenario == "")
    txn["amount"][hit] *= rng.uniform(3, 6, hit.sum())
    scenario[hit] = "compromised_card"

    # 4. Account takeover: new device, far from home, often abroad, often at night.
    picks = _unlabelled(rng, scenario, int(round(budget["account_takeover"])))
    far_cell = rng.integers(0, CELLS_PER_SIDE**2, picks.size)
    txn["terminal"][picks] = _terminal_in_cell(rng, places, far_cell)
    txn["device"][picks] = rng.integers(10**8, 10**9, picks.size)  # never a customer's own
    txn["international"][picks] = rng.uniform(0, 1, picks.size) < 0.6
    night = rng.uniform(0, 1, picks.size) < 0.6
    day_start = txn["seconds"][picks] // 86400 * 86400
    txn["seconds"][picks] = np.where(night, day_start + rng.integers(3600, 5 * 3600, picks.size), txn["seconds"][picks])
    txn["amount"][picks] = people["mean_amount"][txn["customer"][picks]] * rng.uniform(2, 8, picks.size)
    scenario[picks] = "account_takeover"


def _window_start(rng: np.random.Generator, days: int, window_days: int, size: int) -> np.ndarray:
    """Start second of compromise windows that fit inside the simulated period when they can."""
    return rng.integers(0, max(1, days - window_days + 1), size) * 86400


def _unlabelled(rng: np.random.Generator, scenario: np.ndarray, count: int) -> np.ndarray:
    free = np.flatnonzero(scenario == "")
    return rng.choice(free, size=min(count, free.size), replace=False)


def _tables(rng, txn, scenario, people, places) -> Dataset:
    order = _sort_by(txn["seconds"], txn["customer"])
    txn = {k: v[order] for k, v in txn.items()}
    scenario = scenario[order]
    n = scenario.size

    timestamp = np.datetime64(START.tz_localize(None), "s") + txn["seconds"].astype("timedelta64[s]")
    # Hours since the same customer's previous payment (first one: since their last
    # payment before the window, drawn from their usual pace).
    by_customer = _sort_by(txn["customer"], txn["seconds"])
    gaps = np.diff(txn["seconds"][by_customer], prepend=-1) / 3600.0
    first = np.r_[True, txn["customer"][by_customer][1:] != txn["customer"][by_customer][:-1]]
    gaps[first] = rng.exponential(24.0 / people["activity"][txn["customer"][by_customer][first]].clip(0.1))
    since_last = np.empty(n)
    since_last[by_customer] = gaps

    distance = np.hypot(
        people["x"][txn["customer"]] - places["x"][txn["terminal"]],
        people["y"][txn["customer"]] - places["y"][txn["terminal"]],
    )
    transactions = pd.DataFrame(
        {
            "transaction_id": _transaction_ids(rng, n),
            "timestamp": _iso(timestamp),
            "customer_id": _labels_for("C{:06d}", txn["customer"]),
            "terminal_id": _labels_for("T{:06d}", txn["terminal"]),
            "amount": np.round(txn["amount"], 2),
            "merchant_category": _take(CATEGORIES, txn["category"]),
            "location_distance_km": np.round(distance, 2),
            "time_since_last_txn_hours": np.round(since_last, 2),
            "is_international": txn["international"].astype(int),
            "device_fingerprint": _labels_for("DEV-{:09d}", txn["device"]),
        },
        columns=STREAM_COLUMNS,
    )
    is_fraud = scenario != ""
    # Chargebacks arrive 1-14 days after a fraud; a legitimate payment counts as settled
    # (label known) once no chargeback came within 14 days.
    delay_days = np.where(is_fraud, rng.uniform(1, 14, n), 14.0)
    labels = pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"],
            "is_fraud": is_fraud.astype(int),
            "fraud_scenario": np.where(is_fraud, scenario, "none"),
            "label_available_at": _iso(timestamp + (delay_days * 86400).astype("timedelta64[s]")),
        },
        columns=LABEL_COLUMNS,
    )
    return Dataset(transactions=transactions, labels=labels)


def _sort_by(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """np.lexsort((minor, major)) for non-negative integers, as one stable argsort of a
    combined key (2.7x faster at 5M rows)."""
    return np.argsort(major.astype(np.int64) * (int(minor.max(initial=0)) + 1) + minor, kind="stable")


def _transaction_ids(rng: np.random.Generator, n: int) -> pd.api.extensions.ExtensionArray:
    """Random 64-bit IDs ("TXN-3f9a0c1b2d4e5f60"): unique across seeds and batches, so
    several runs can share a bucket, and they reveal nothing about time order."""
    ids = rng.integers(0, 2**63, n, dtype=np.int64)
    while (repeat := _repeats(ids)).size:  # a collision is ~1e-7 likely at a million rows
        ids[repeat] = rng.integers(0, 2**63, repeat.size, dtype=np.int64)
    hex_pairs = np.array([list(f"{b:02x}".encode()) for b in range(256)], np.uint8)
    big_endian_bytes = ids.astype(">u8").view(np.uint8).reshape(n, 8)
    return _ascii(b"TXN-", hex_pairs[big_endian_bytes].reshape(n, 16))


def _repeats(values: np.ndarray) -> np.ndarray:
    """Positions holding a value seen at an earlier position (sorting beats hashing here)."""
    ordered = np.sort(values)
    if not (ordered[1:] == ordered[:-1]).any():  # the usual case: a plain sort tells
        return np.empty(0, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    again = np.r_[False, values[order][1:] == values[order][:-1]]
    return np.sort(order[again])


def _iso(times: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """ISO 8601 UTC strings ("2026-10-01T00:00:00Z"), the way the stream carries time:
    each distinct date and each time of day formatted once, then gathered."""
    days = times.astype("datetime64[D]")
    first = days.min() if times.size else np.datetime64(0, "D")
    dates = np.arange(first, days.max() + 1 if times.size else first + 1)
    date_text = np.array([list(f"{d}T".encode()) for d in dates], np.uint8)
    clock_text = np.array([list(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z".encode()) for s in range(86400)], np.uint8)
    seconds = (times - days).astype("timedelta64[s]").astype(np.int64)
    return _ascii(b"", date_text[(days - first).astype(np.int64)], clock_text[seconds])


def _ascii(prefix: bytes, *parts: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Rows of ASCII codes (parts of n x width each, side by side) as strings, each starting
    with `prefix`: arrow strings made from the bytes directly (numpy's fixed-width unicode
    would take 4 bytes a character)."""
    n = parts[0].shape[0]
    text = np.empty((n, len(prefix) + sum(part.shape[1] for part in parts)), np.uint8)
    text[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    column = len(prefix)
    for part in parts:
        text[:, column : column + part.shape[1]] = part
        column += part.shape[1]
    return pd.array(pa.array(text.view(f"S{text.shape[1]}").ravel()).cast(pa.string()), dtype="str")


def _labels_for(template: str, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Format each distinct code once, then index: IDs repeat across many transactions."""
    inverse, distinct = pd.factorize(codes)
    return _take(np.array([template.format(c) for c in distinct]), inverse)


def _take(values: np.ndarray, indices: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """values[indices] as arrow strings, without a Python object per row."""
    return pd.array(pa.array(values).take(pa.array(indices)), dtype="str")
