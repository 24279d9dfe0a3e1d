"""Malformed records, sent on purpose: a real stream carries some, and the lab must show
they are quarantined and counted downstream, never crash a job or vanish silently."""
from __future__ import annotations

import json

import pandas as pd

KINDS = ("bad_json", "missing_field", "wrong_type", "negative_amount", "future_timestamp", "duplicate")
FUTURE = pd.DateOffset(years=5)  # a device clock years ahead: after any as-of the job uses


def corrupted_records(transactions: pd.DataFrame, count: int) -> tuple[list[bytes], int]:
    """`count` NDJSON records cycling through KINDS, built from real rows.

    Returns the records and how many of them are exact duplicates of valid records (the
    only kind that reuses a real transaction_id; the others get TXN-BAD-… ids)."""
    rows = transactions.head(max(count, 1)).to_dict("records")
    records, duplicates = [], 0
    for index in range(count):
        kind, row = KINDS[index % len(KINDS)], dict(rows[index % len(rows)])
        if kind != "duplicate":
            row["transaction_id"] = f"TXN-BAD-{index:04d}"
        if kind == "bad_json":
            records.append(json.dumps(row)[:40].encode() + b"\n")  # cut off mid-record
            continue
        if kind == "missing_field":
            del row["terminal_id"]
        elif kind == "wrong_type":
            row["amount"] = f"{row['amount']:.2f}"  # a string where a number belongs
        elif kind == "negative_amount":
            row["amount"] = -abs(row["amount"])
        elif kind == "future_timestamp":
            row["timestamp"] = (pd.Timestamp(row["timestamp"]) + FUTURE).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            duplicates += 1  # the same record delivered twice, as retries can do
        records.append(json.dumps(row, separators=(",", ":")).encode() + b"\n")
    return records, duplicates
