"""Labelled card transactions: realistic enough to learn from, deterministic with a seed.

Customers live somewhere on a 500 x 500 km map and spend with their own habits (how
often, how much, which categories, which devices); terminals sit on the same map and a
customer mostly pays at terminals near home. Legitimate life is noisy on purpose: people
buy a new phone, travel, and now and then make a large purchase, so no single field of a
payment separates fraud from the rest.

Fraud follows four scenarios (SCENARIOS: what each does, its parameters, and what can
reveal it), after the Fraud Detection Handbook (Le Borgne et al.) and the patterns card
issuers report. Most of it needs history to catch: a terminal's fraud record, a card's
usual spending, a burst of payments; a payment on its own rarely gives it away.

The stream records and the ground truth are separate tables, as in a bank: a fraud's
chargeback arrives 1 to `label_delay_days` days later, and a payment with no chargeback
by then is settled as legitimate, so later steps must join the labels and mind the delay.
Everything is vectorized (a million transactions: bench/results.json generator_1m_transactions_s).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

# One home for what the features read back: the categories, and the chargeback delay
# (the Handbook's feedback delay: chargebacks arrive within LABEL_DELAY_DAYS of a fraud;
# after it, a payment with none is settled as legitimate).
from processing.features import CATEGORIES as CATEGORY_NAMES
from processing.features import LABEL_DELAY_DAYS

MAP_KM = 500.0
CELL_KM = 50.0
CELLS_PER_SIDE = int(MAP_KM // CELL_KM)
# The data ends weeks before the kit's first release, so every label is known whenever the
# lab runs: its figures depend on the seed and size, never on the day it is run.
START = pd.Timestamp("2026-09-01T00:00:00Z")
DAYS = 60
CATEGORIES = np.array(CATEGORY_NAMES)  # an array: the generator indexes it with codes
CATEGORY_WEIGHTS = np.array([0.30, 0.20, 0.17, 0.12, 0.07, 0.04, 0.10])
CATEGORY_AMOUNT_FACTOR = np.array([0.8, 1.0, 0.6, 0.9, 2.5, 3.0, 1.1])
ONLINE, ELECTRONICS = 6, 4

# Legitimate noise that looks like fraud on a single payment.
NEW_PHONE_SHARE = 0.05  # of customers switch to a new device at a random moment
BIG_PURCHASE_SHARE = 0.003  # of payments are 3-10x the customer's usual amount
TRAVEL_SHARE = 0.03  # of payments are made anywhere on the map (30 % of them abroad)


@dataclass(frozen=True)
class Scenario:
    share: float  # of all frauds, at any fraud rate
    what: str
    revealed_by: str


SCENARIOS = {
    "compromised_terminal": Scenario(
        0.30,
        "a skimmed terminal: for 14-35 days, every payment made there is fraud, "
        "at ordinary amounts",
        "only the terminal's fraud history, known after the label delay: the first days "
        "of each compromise look like any other payment",
    ),
    "compromised_card": Scenario(
        0.25,
        "card details sold: for 14 days a quarter of the card's payments are fraud, "
        "3-8x the card's usual amount, often electronics or online, sometimes far away",
        "the card's own spending history (amount against its 30-day mean); "
        "the smaller ones hide among the customer's own larger purchases",
    ),
    "card_testing": Scenario(
        0.20,
        "2-5 tiny online payments (0.50-3.00) minutes apart from a new device, then one "
        "large purchase within hours",
        "the burst (payments in the last day, hours since the previous one) and the new "
        "device; the first test payment has no burst behind it yet",
    ),
    "account_takeover": Scenario(
        0.25,
        "someone else logs in from a new device and pays once or twice within two days; "
        "70 % stay near home at ordinary hours and 1-3x the usual amount, "
        "30 % are blatant (far away, often abroad or at night, 3-8x)",
        "the new device, which legitimate customers also show when they change phones: "
        "the subtle ones are the model's hardest cases",
    ),
}
SCENARIO_SHARE = {name: scenario.share for name, scenario in SCENARIOS.items()}
# Each payment's scenario as a small code while generating (0: legitimate): comparing and
# moving millions of Python strings is slow.
SCENARIO_NAMES = np.array(["none", *SCENARIOS])
CODE = {name: np.int8(code) for code, name in enumerate(SCENARIO_NAMES)}
TERMINAL_COMPROMISE_DAYS = (14, 35)
TERMINAL_FRAUD_SHARE = 1.0
CARD_COMPROMISE_DAYS = 14
CARD_FRAUD_SHARE = 0.25
TESTING_PAYMENTS = (2, 5)
TAKEOVER_PAYMENTS = (1, 2)
TAKEOVER_BLATANT_SHARE = 0.3
FRAUDSTER_DEVICES = 10**8  # device numbers from here on are never a customer's own

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
    days: int = DAYS,
    fraud_rate: float = 0.015,
    label_delay_days: int = LABEL_DELAY_DAYS,
    customers: int | None = None,
    terminals: int | None = None,
) -> Dataset:
    """Generate `n_transactions` over `days` days starting at START.

    `fraud_rate` is the target share of fraudulent transactions (0-0.2); the realised
    rate lands close to it. Same arguments, same data.
    """
    if n_transactions < 1:
        raise ValueError("n_transactions must be at least 1")
    if not 0.0 <= fraud_rate <= 0.2:
        raise ValueError("fraud_rate must be between 0 and 0.2")
    if days < 1:
        raise ValueError("days must be at least 1")
    if label_delay_days < 1:
        raise ValueError("label_delay_days must be at least 1")
    rng = np.random.default_rng(seed)
    n_customers = customers or max(50, n_transactions // 60)
    n_terminals = terminals or max(CELLS_PER_SIDE**2, n_transactions // 100)

    people = _customers(rng, n_customers, days)
    places = _terminals(rng, n_terminals)
    txn = _legitimate_transactions(rng, n_transactions, days, people, places)
    scenario = np.zeros(n_transactions, np.int8)  # each payment's CODE
    budget = {name: share * fraud_rate * n_transactions for name, share in SCENARIO_SHARE.items()}
    _compromised_terminals(rng, txn, scenario, places, days, budget["compromised_terminal"])
    _compromised_cards(rng, txn, scenario, people, places, days, budget["compromised_card"])
    _card_testing(rng, txn, scenario, people, places, days, budget["card_testing"])
    _account_takeovers(rng, txn, scenario, people, places, days, budget["account_takeover"])
    return _tables(rng, txn, scenario, people, places, label_delay_days)


def _customers(rng: np.random.Generator, n: int, days: int) -> dict[str, np.ndarray]:
    new_phone = rng.uniform(0, 1, n) < NEW_PHONE_SHARE
    return {
        "x": rng.uniform(0, MAP_KM, n),
        "y": rng.uniform(0, MAP_KM, n),
        "mean_amount": rng.uniform(10, 150, n),
        "activity": rng.gamma(2.0, 1.0, n),  # relative transactions per day
        "device": rng.integers(10**6, FRAUDSTER_DEVICES // 10, n) * 10,  # +1: second phone, +2: new phone
        "new_phone_at": np.where(new_phone, rng.integers(0, days * 86400, n), np.iinfo(np.int64).max),
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


def _home_terminal(rng, people, places, customers: np.ndarray) -> np.ndarray:
    return _terminal_in_cell(rng, places, _cell_of(people["x"][customers], people["y"][customers]))


def _legitimate_transactions(rng, n, days, people, places) -> dict[str, np.ndarray]:
    n_customers = people["x"].size
    customer = rng.choice(n_customers, size=n, p=people["activity"] / people["activity"].sum())
    # Time of day: mostly daytime and evening, few payments between 1 and 6 am.
    hour_weights = np.array([2, 1, 1, 1, 1, 1, 2, 4, 6, 7, 8, 8, 9, 8, 8, 8, 8, 9, 9, 8, 7, 6, 4, 3], float)
    day = rng.integers(0, days, n)
    hour = rng.choice(24, size=n, p=hour_weights / hour_weights.sum())
    seconds = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)

    # Most payments near home; some while travelling (anywhere on the map, legitimately).
    travelling = rng.uniform(0, 1, n) < TRAVEL_SHARE
    terminal = np.where(
        travelling, _terminal_in_cell(rng, places, rng.integers(0, CELLS_PER_SIDE**2, n)), _home_terminal(rng, people, places, customer)
    )

    # A category per payment from the customer's tilt: the first k with cumulative tilt > u
    # (0 if rounding leaves none), one small gather per category instead of an n x 7 matrix,
    # each from a contiguous column (a strided one costs a cache line per payment).
    cumulative = people["category_tilt"].cumsum(axis=1).T.copy()
    u = rng.uniform(0, 1, n)
    below = np.zeros(n, dtype=np.int64)
    for tilt_up_to_k in cumulative:
        below += tilt_up_to_k[customer] <= u
    category = np.where(below == len(CATEGORIES), 0, below)
    amount = people["mean_amount"][customer] * CATEGORY_AMOUNT_FACTOR[category] * rng.lognormal(0, 0.5, n)
    amount *= np.where(rng.uniform(0, 1, n) < BIG_PURCHASE_SHARE, rng.uniform(3, 10, n), 1.0)
    device = people["device"][customer] + np.where(rng.uniform(0, 1, n) < 0.05, 1, 0)  # a second phone, now and then
    device = np.where(seconds >= people["new_phone_at"][customer], people["device"][customer] + 2, device)
    return {
        "customer": customer,
        "seconds": seconds,
        "terminal": terminal,
        "category": category,
        "amount": amount,
        "international": (travelling & (rng.uniform(0, 1, n) < 0.3)) | (rng.uniform(0, 1, n) < 0.01),
        "device": device,
    }


def _compromised_terminals(rng, txn, scenario, places, days, budget: float) -> None:
    """Skimmed terminals: within each compromise window, a share of its payments are fraud."""
    n, n_terminals = scenario.size, places["x"].size
    low, high = TERMINAL_COMPROMISE_DAYS
    # Windows may start before the period or run past its end, so that fraud is spread
    # evenly over time (a test period at the end sees as much of it as any other).
    mean_overlap = min(days, (low + high) / 2) * days / (days + (low + high) / 2)
    expected_per_terminal = n / n_terminals * mean_overlap / days * TERMINAL_FRAUD_SHARE
    count = min(n_terminals, max(1, int(round(budget / max(expected_per_terminal, 1e-9)))))
    terminals = rng.choice(n_terminals, size=count, replace=False)
    duration = rng.integers(low, high + 1, count) * 86400
    start = np.full(n_terminals, -1, dtype=np.int64)  # with end -1: not compromised
    end = np.full(n_terminals, -1, dtype=np.int64)
    start[terminals] = rng.integers(-duration, days * 86400)
    end[terminals] = start[terminals] + duration
    at = txn["terminal"]
    hit = (txn["seconds"] >= start[at]) & (txn["seconds"] < end[at])
    hit &= (rng.uniform(0, 1, n) < TERMINAL_FRAUD_SHARE) & (scenario == CODE["none"])
    scenario[hit] = CODE["compromised_terminal"]


def _compromised_cards(rng, txn, scenario, people, places, days, budget: float) -> None:
    """Sold card details: within the window, a share of the card's payments change pattern."""
    n, n_customers = scenario.size, people["x"].size
    window = CARD_COMPROMISE_DAYS * 86400
    mean_overlap = min(days, CARD_COMPROMISE_DAYS) * days / (days + CARD_COMPROMISE_DAYS)
    expected_per_card = n / n_customers * mean_overlap / days * CARD_FRAUD_SHARE
    cards = rng.choice(n_customers, size=min(n_customers, max(1, int(round(budget / max(expected_per_card, 1e-9))))), replace=False)
    start = np.full(n_customers, np.iinfo(np.int64).max - window, dtype=np.int64)  # never
    start[cards] = rng.integers(-window, days * 86400, cards.size)  # spread evenly, as for terminals
    c = txn["customer"]
    hit = (txn["seconds"] >= start[c]) & (txn["seconds"] < start[c] + window)
    hit &= (rng.uniform(0, 1, n) < CARD_FRAUD_SHARE) & (scenario == CODE["none"])
    picks = np.flatnonzero(hit)
    txn["amount"][picks] = people["mean_amount"][c[picks]] * rng.uniform(3, 8, picks.size)
    txn["category"][picks] = np.where(rng.uniform(0, 1, picks.size) < 0.6, rng.choice([ONLINE, ELECTRONICS], picks.size), txn["category"][picks])
    far = rng.uniform(0, 1, picks.size) < 0.3
    txn["terminal"][picks[far]] = _terminal_in_cell(rng, places, rng.integers(0, CELLS_PER_SIDE**2, far.sum()))
    scenario[picks] = CODE["compromised_card"]


def _card_testing(rng, txn, scenario, people, places, days, budget: float) -> None:
    """Episodes on random cards: tiny online test payments minutes apart, then a large one."""
    low, high = TESTING_PAYMENTS
    episodes = max(1, int(round(budget / ((low + high) / 2 + 1))))
    tests = rng.integers(low, high + 1, episodes)
    rows = _episode_rows(rng, scenario, tests + 1)
    if rows.size == 0:
        return
    episode = np.repeat(np.arange(episodes), tests + 1)[: rows.size]
    position = _position_in_episode(episode)
    last = position == tests[episode]  # the large purchase closes each episode
    card = rng.integers(0, people["x"].size, episodes)[episode]
    start = rng.integers(0, days * 86400 - 86400, episodes)[episode]
    gap = np.where(last, rng.integers(1800, 6 * 3600, rows.size), rng.integers(60, 20 * 60, rows.size))
    txn["customer"][rows] = card
    txn["seconds"][rows] = start + _cumulative_in_episode(gap, episode) - gap[position == 0][episode]
    txn["terminal"][rows] = _terminal_in_cell(rng, places, rng.integers(0, CELLS_PER_SIDE**2, rows.size))
    txn["category"][rows] = np.where(last, rng.choice([ONLINE, ELECTRONICS], rows.size), ONLINE)
    txn["amount"][rows] = np.where(last, people["mean_amount"][card] * rng.uniform(3, 10, rows.size), rng.uniform(0.5, 3, rows.size))
    txn["international"][rows] = (rng.uniform(0, 1, episodes) < 0.3)[episode]
    txn["device"][rows] = rng.integers(FRAUDSTER_DEVICES, 10 * FRAUDSTER_DEVICES, episodes)[episode]
    scenario[rows] = CODE["card_testing"]


def _account_takeovers(rng, txn, scenario, people, places, days, budget: float) -> None:
    """Someone else's device on the account: mostly subtle, some blatant."""
    low, high = TAKEOVER_PAYMENTS
    episodes = max(1, int(round(budget / ((low + high) / 2))))
    sizes = rng.integers(low, high + 1, episodes)
    rows = _episode_rows(rng, scenario, sizes)
    if rows.size == 0:
        return
    episode = np.repeat(np.arange(episodes), sizes)[: rows.size]
    blatant = (rng.uniform(0, 1, episodes) < TAKEOVER_BLATANT_SHARE)[episode]
    position = _position_in_episode(episode)
    first = rows[position == 0]
    victim = txn["customer"][first][episode]  # the first row's customer is the victim
    txn["customer"][rows] = victim
    later = np.where(position == 0, 0, rng.integers(600, 2 * 86400, rows.size))
    txn["seconds"][rows] = np.minimum(txn["seconds"][first][episode] + later, days * 86400 - 1)
    near = _home_terminal(rng, people, places, victim)
    far = _terminal_in_cell(rng, places, rng.integers(0, CELLS_PER_SIDE**2, rows.size))
    txn["terminal"][rows] = np.where(blatant, far, near)
    txn["device"][rows] = rng.integers(FRAUDSTER_DEVICES, 10 * FRAUDSTER_DEVICES, episodes)[episode]
    txn["international"][rows] = blatant & (rng.uniform(0, 1, rows.size) < 0.6)
    night = blatant & (rng.uniform(0, 1, rows.size) < 0.6)
    day_start = txn["seconds"][rows] // 86400 * 86400
    txn["seconds"][rows] = np.where(night, day_start + rng.integers(3600, 5 * 3600, rows.size), txn["seconds"][rows])
    factor = np.where(blatant, rng.uniform(3, 8, rows.size), rng.uniform(1, 3, rows.size))
    txn["amount"][rows] = people["mean_amount"][victim] * CATEGORY_AMOUNT_FACTOR[txn["category"][rows]] * factor
    scenario[rows] = CODE["account_takeover"]


def _episode_rows(rng: np.random.Generator, scenario: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Legitimate rows to rewrite as the episodes' payments (random ones: their customers,
    times and places are replaced, so they are new payments in all but their slot)."""
    free = np.flatnonzero(scenario == CODE["none"])
    return rng.choice(free, size=min(int(sizes.sum()), free.size), replace=False)


def _position_in_episode(episode: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) episode numbers."""
    starts = np.r_[0, np.flatnonzero(np.diff(episode)) + 1]
    return np.arange(episode.size) - np.repeat(starts, np.diff(np.r_[starts, episode.size]))


def _cumulative_in_episode(values: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Running sum of `values` restarting at each episode."""
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(episode)) + 1]
    before = np.r_[0, total[starts[1:] - 1]]
    return total - np.repeat(before, np.diff(np.r_[starts, episode.size]))


def _tables(rng, txn, scenario, people, places, label_delay_days: int) -> Dataset:
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
    is_fraud = scenario != CODE["none"]
    # Chargebacks arrive 1 to label_delay_days days after a fraud; a legitimate payment
    # counts as settled (label known) once no chargeback came within label_delay_days.
    delay_days = np.where(is_fraud, rng.uniform(1, label_delay_days, n), float(label_delay_days))
    labels = pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"],
            "is_fraud": is_fraud.astype(int),
            "fraud_scenario": _take(SCENARIO_NAMES, scenario),
            "label_available_at": _iso(timestamp + (delay_days * 86400).astype("timedelta64[s]")),
        },
        columns=LABEL_COLUMNS,
    )
    return Dataset(transactions=transactions, labels=labels)


def _sort_by(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """np.lexsort((minor, major)) for non-negative integers. Each row's key carries its
    position in the low digits, so keys are unique and a plain sort of values (numpy's
    SIMD sort) gives the stable order, far faster than a stable argsort.
    Keys too wide for int64 take the argsort."""
    n = major.size
    minor_span = int(minor.max(initial=0)) + 1
    key = major.astype(np.int64) * minor_span + minor
    if (int(major.max(initial=0)) + 1) * minor_span * max(n, 1) >= 2**63:
        return np.argsort(key, kind="stable")
    key *= n
    key += np.arange(n)
    key.sort()
    return key % n


def _transaction_ids(rng: np.random.Generator, n: int) -> pd.api.extensions.ExtensionArray:
    """Random 64-bit IDs ("TXN-3f9a0c1b2d4e5f60"): unique across seeds and batches, so
    several runs can share a bucket, and they reveal nothing about time order."""
    ids = rng.integers(0, 2**63, n, dtype=np.int64)
    while (repeat := _repeats(ids)).size:  # a collision is ~1e-7 likely at a million rows
        ids[repeat] = rng.integers(0, 2**63, repeat.size, dtype=np.int64)
    hex_pairs = np.array([list(f"{b:02x}".encode()) for b in range(256)], np.uint8)
    return _ascii(n, b"TXN-", lambda rows: (hex_pairs[ids[rows].astype(">u8").view(np.uint8).reshape(-1, 8)].reshape(-1, 16),))


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
    first = times.min().astype("datetime64[D]") if times.size else np.datetime64(0, "D")
    dates = np.arange(first, times.max().astype("datetime64[D]") + 1 if times.size else first + 1)
    date_text = np.array([list(f"{d}T".encode()) for d in dates], np.uint8)
    clock_text = np.array([list(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z".encode()) for s in range(86400)], np.uint8)

    def parts(rows: slice) -> tuple[np.ndarray, ...]:
        days = times[rows].astype("datetime64[D]")
        seconds = (times[rows] - days).astype("timedelta64[s]").astype(np.int64)
        return date_text[(days - first).astype(np.int64)], clock_text[seconds]

    return _ascii(times.size, b"", parts)


# Rows turned into text at a time: each block's temporaries (a few MB) stay in cache and
# are reused from the heap, where whole-column ones (over glibc's 32 MiB mmap threshold
# from 2M rows on) were mapped afresh, zeroed by the kernel and unmapped every time.
TEXT_BLOCK_ROWS = 1 << 17


def _ascii(n: int, prefix: bytes, parts_of) -> pd.api.extensions.ExtensionArray:
    """n strings, each `prefix` then the ASCII codes `parts_of(rows)` gives for a slice of
    rows (arrays of rows x width, side by side): arrow strings made from the bytes directly
    (numpy's fixed-width unicode would take 4 bytes a character), a block of rows at a time."""
    chunks = []
    for start in range(0, n, TEXT_BLOCK_ROWS):
        parts = parts_of(slice(start, min(n, start + TEXT_BLOCK_ROWS)))
        text = np.empty((parts[0].shape[0], len(prefix) + sum(part.shape[1] for part in parts)), np.uint8)
        text[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
        column = len(prefix)
        for part in parts:
            text[:, column : column + part.shape[1]] = part
            column += part.shape[1]
        chunks.append(pa.array(text.view(f"S{text.shape[1]}").ravel()).cast(pa.string()))
    return pd.array(pa.chunked_array(chunks, pa.string()), dtype="str")


def _labels_for(template: str, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Format each distinct code once, then index: IDs repeat across many transactions."""
    inverse, distinct = pd.factorize(codes)
    return _take(np.array([template.format(c) for c in distinct]), inverse)


def _take(values: np.ndarray, indices: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """values[indices] as arrow strings, without a Python object per row."""
    return pd.array(pa.array(values).take(pa.array(indices)), dtype="str")
