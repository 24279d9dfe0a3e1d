"""The feature job's outputs written the straightforward way with DuckDB (a dev dependency,
never shipped): the peer the job's speed is measured against.

Same inputs, same rows and the same FEATURE_COLUMNS as processing/feature_job.py on clean
data (it does no quarantine): windows as SQL RANGE frames over whole epoch seconds, so the
half-open windows of processing/features.py become closed integer ranges:
  customer, strictly before:        (t - w, t)             = [t - w + 1, t - 1]
  terminal, lagged by the delay:    (t - lag - w, t - lag] = [t - lag - w + 1, t - lag]
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from processing.features import CATEGORIES, FEATURE_COLUMNS, LABEL_DELAY_DAYS, WINDOWS_DAYS

DAY = 86_400
SPLITS = ("train", "validation", "test")


def feature_sql() -> str:
    customer = []
    for w in WINDOWS_DAYS:
        frame = f"OVER (PARTITION BY customer_id ORDER BY s RANGE BETWEEN {w * DAY - 1} PRECEDING AND 1 PRECEDING)"
        customer += [f"COUNT(*) {frame} AS customer_txn_count_{w}d", f"COALESCE(SUM(amount) {frame}, 0) AS customer_sum_{w}d"]
    terminal = []
    lag = LABEL_DELAY_DAYS * DAY
    for w in WINDOWS_DAYS:
        frame = f"OVER (PARTITION BY terminal_id ORDER BY s RANGE BETWEEN {lag + w * DAY - 1} PRECEDING AND {lag} PRECEDING)"
        terminal += [f"COUNT(*) {frame} AS terminal_count_{w}d", f"COALESCE(SUM(fraud) {frame}, 0) AS terminal_fraud_{w}d"]
    categories = [f"CAST(merchant_category = '{c}' AS INTEGER) AS category_{c}" for c in CATEGORIES]
    return f"""
        SELECT *,
            ln(1 + amount) AS log_amount,
            (s // 3600) % 24 AS hour_of_day,
            CAST(((s // {DAY}) + 3) % 7 >= 5 AS INTEGER) AS is_weekend,
            CAST((s // 3600) % 24 < 6 AS INTEGER) AS is_night,
            {", ".join(categories)},
            {", ".join(customer)},
            {", ".join(terminal)},
            CAST(ROW_NUMBER() OVER (PARTITION BY customer_id, device_fingerprint ORDER BY s, transaction_id) = 1 AS INTEGER) AS device_is_new
        FROM labelled"""


def derived(name: str) -> str:
    """The SQL for one FEATURE_COLUMNS entry over feature_sql()'s columns."""
    for w in WINDOWS_DAYS:
        if name == f"customer_mean_amount_{w}d":
            return f"CASE WHEN customer_txn_count_{w}d > 0 THEN customer_sum_{w}d / customer_txn_count_{w}d ELSE 0 END"
        if name == f"terminal_fraud_rate_{w}d":
            return f"CASE WHEN terminal_count_{w}d > 0 THEN terminal_fraud_{w}d / terminal_count_{w}d ELSE 0 END"
    if name == "amount_to_customer_mean_30d":
        return "CASE WHEN customer_sum_30d > 0 THEN amount / (customer_sum_30d / customer_txn_count_30d) ELSE 1 END"
    return name


def run(raw: Path, labels: Path, output: Path, as_of: str, train_fraction: float = 0.70, validation_fraction: float = 0.15) -> None:
    db = duckdb.connect()
    db.execute(f"""
        CREATE TABLE tx AS SELECT *, epoch(CAST("timestamp" AS TIMESTAMPTZ))::BIGINT AS s
        FROM read_json('{raw}/**/*', format = 'newline_delimited', compression = 'gzip', columns = {{
            transaction_id: 'VARCHAR', "timestamp": 'VARCHAR', customer_id: 'VARCHAR', terminal_id: 'VARCHAR',
            amount: 'DOUBLE', merchant_category: 'VARCHAR', location_distance_km: 'DOUBLE',
            time_since_last_txn_hours: 'DOUBLE', is_international: 'INTEGER', device_fingerprint: 'VARCHAR'}})""")
    db.execute(f"""
        CREATE TABLE known AS SELECT transaction_id, arg_max(is_fraud, rowid) AS is_fraud
        FROM (SELECT *, row_number() OVER () AS rowid FROM read_csv('{labels}/*.csv', types = {{'transaction_id': 'VARCHAR'}}))
        WHERE CAST(label_available_at AS TIMESTAMPTZ) <= TIMESTAMPTZ '{as_of}+00:00'
        GROUP BY transaction_id""")
    db.execute("""
        CREATE TABLE labelled AS SELECT tx.*, known.is_fraud, COALESCE(known.is_fraud, 0) AS fraud
        FROM tx LEFT JOIN known USING (transaction_id)""")
    # Periods by time as the job cuts them: two gaps of one label delay, mature payments only.
    delay = LABEL_DELAY_DAYS * DAY
    start, last = db.execute("SELECT min(s), max(s) FROM labelled").fetchone()
    end = min(int(pd.Timestamp(as_of, tz="UTC").timestamp()) - delay, last + 1)
    usable = end - start - 2 * delay
    validation_from = start + usable * train_fraction + delay
    test_from = validation_from + usable * validation_fraction + delay
    db.execute(f"CREATE TABLE features AS {feature_sql()}")
    columns = ", ".join(f"{derived(name)} AS {name}" for name in FEATURE_COLUMNS)
    where = {
        "train": f"s < {validation_from - delay}",
        "validation": f"s >= {validation_from} AND s < {test_from - delay}",
        "test": f"s >= {test_from} AND s < {end}",
    }
    for name in SPLITS:
        (output / name).mkdir(parents=True, exist_ok=True)
        db.execute(f"""COPY (SELECT is_fraud, {columns} FROM features WHERE is_fraud IS NOT NULL AND {where[name]}
                      ORDER BY s, transaction_id) TO '{output / name / "part.csv"}' (HEADER false)""")
    (output / "baseline").mkdir(parents=True, exist_ok=True)
    db.execute(f"""COPY (SELECT {columns} FROM features WHERE is_fraud IS NOT NULL AND {where["train"]}
                  ORDER BY s, transaction_id) TO '{output / "baseline" / "baseline.csv"}' (HEADER true)""")
