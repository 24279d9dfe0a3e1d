"""Chargeback labels (CSV: transaction_id,is_fraud,fraud_scenario,label_available_at) ->
one validated label per transaction known at the job's as-of, and every rejected row by reason.

Labels come from another system than the stream and are checked as strictly:
- `label_bad_file`: a file that is not CSV with the four columns (counted in files);
- `label_bad_value`: an empty transaction_id, is_fraud not 0/1, label_available_at not
  ISO 8601;
- `label_conflicting`: one transaction labelled differently (is_fraud or scenario) by known
  labels: every one is rejected and the payment stays unlabelled, since nothing says which
  is right (file-name order is not a reason);
- `label_unknown_transaction`: a known label for no valid transaction;
- `label_duplicate`: the same label delivered again: kept once, counted, not quarantined.
A label not yet available at the as-of is not an error: it is simply not known yet.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the container's code dir is flat

from validation import copies, filled_array, parse_utc, string_codes  # noqa: E402

COLUMNS = ("transaction_id", "is_fraud", "fraud_scenario", "label_available_at")
QUARANTINED = ("label_bad_value", "label_conflicting", "label_unknown_transaction")
_AS_TEXT = pa_csv.ConvertOptions(column_types={name: pa.string() for name in COLUMNS}, strings_can_be_null=True)


@dataclass
class Labels:
    table: pa.Table  # transaction_id, is_fraud (int64), fraud_scenario, label_available_at (as delivered), file,
    #                  available_at (parsed, UTC): one row per id
    rejected: dict[str, list[dict]] = field(default_factory=dict)  # QUARANTINED reason -> rows (+ "file")
    duplicates: int = 0
    bad_files: list[dict] = field(default_factory=list)  # {"object", "error"}
    not_yet_known: int = 0

    def counts(self) -> dict[str, int]:
        return {
            **{reason: len(self.rejected.get(reason, [])) for reason in QUARANTINED},
            "label_duplicate": self.duplicates,
            "label_bad_file": len(self.bad_files),
        }


def read_labels(labels_dir: Path, as_of: pd.Timestamp) -> Labels:
    """The labels CSV files under `labels_dir` (any depth, by path), validated."""
    paths = sorted(p for p in labels_dir.rglob("*.csv") if p.is_file())
    return validate_labels([(str(p.relative_to(labels_dir)), p) for p in paths], as_of)


def validate_labels(files: list[tuple[str, Path | BinaryIO]], as_of: pd.Timestamp) -> Labels:
    """Valid labels known at `as_of`, one per transaction, from (name, file) pairs; not yet
    checked against the transactions (see `keep_known_transactions`)."""
    tables, bad_files = [], []
    for name, source in files:
        try:
            table = pa_csv.read_csv(source, convert_options=_AS_TEXT)
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            bad_files.append({"object": name, "error": str(error).splitlines()[0]})
            continue
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            bad_files.append({"object": name, "error": f"missing column(s) {', '.join(missing)}"})
            continue
        tables.append(table.select(list(COLUMNS)).append_column("file", pa.array([name] * table.num_rows, pa.string())))
    table = pa.concat_tables(tables) if tables else pa.table({c: pa.array([], pa.string()) for c in (*COLUMNS, "file")})
    rejected: dict[str, list[dict]] = {reason: [] for reason in QUARANTINED}

    available = parse_utc(table.column("label_available_at"))
    flag = table.column("is_fraud")
    bad = (
        filled_array(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(table.column("transaction_id"))), 0), True)
        | ~filled_array(pc.is_in(flag, pa.array(["0", "1"])), False)
        | available.isna().to_numpy()
    )
    rejected["label_bad_value"] = table.filter(pa.array(bad)).to_pylist()
    known = ~bad & (available <= as_of).to_numpy()
    not_yet_known = int((~bad & ~known).sum())
    table = table.filter(pa.array(known))
    available = available[known]

    scenario = pc.fill_null(table.column("fraud_scenario"), "")  # no scenario equals no scenario
    repeated, conflicting = copies(string_codes(table.column("transaction_id")), [table.column("is_fraud"), scenario])
    rejected["label_conflicting"] = table.filter(pa.array(conflicting)).to_pylist()
    keep = ~repeated & ~conflicting
    duplicates = int((repeated & ~conflicting).sum())
    kept = table.filter(pa.array(keep))
    result = pa.table({
        "transaction_id": kept.column("transaction_id"),
        "is_fraud": pc.cast(kept.column("is_fraud"), pa.int64()),
        "fraud_scenario": kept.column("fraud_scenario"),
        "label_available_at": kept.column("label_available_at"),
        "file": kept.column("file"),
        "available_at": pa.array(available[keep].array.asi8, pa.timestamp("ns", "UTC")),
    })
    return Labels(result, rejected, duplicates, bad_files, not_yet_known)


def keep_known_transactions(labels: Labels, transaction_ids: pa.Array) -> pa.Array:
    """Reject (as label_unknown_transaction) the labels of no valid transaction. Returns each
    transaction's row in the labels kept, null where it has none: one hash lookup serves the
    check and the join (ids are unique on both sides once validated)."""
    at = pc.index_in(transaction_ids, value_set=labels.table.column("transaction_id").combine_chunks())
    matched = np.zeros(labels.table.num_rows, bool)
    matched[at.drop_null().to_numpy()] = True
    labels.rejected["label_unknown_transaction"] = labels.table.drop_columns(["available_at"]).filter(pa.array(~matched)).to_pylist()
    labels.table = labels.table.filter(pa.array(matched))
    if not matched.any():  # no label known for any payment (none delivered yet, say)
        return pa.nulls(len(at), pa.int64())
    kept_row = np.cumsum(matched) - 1  # a kept label's row after the filter
    return pa.array(kept_row[filled_array(at, 0, np.int64)], mask=filled_array(pc.is_null(at), dtype=bool))
