"""SageMaker Processing entrypoint: landed transactions + labels -> XGBoost-ready datasets.

Container contract (SageMaker Processing): inputs and outputs under /opt/ml/processing/,
the request mirrored in /opt/ml/config/processingjobconfig.json, the cluster in
/opt/ml/config/resourceconfig.json ({"current_host": "algo-1", "hosts": [...]}).

Inputs:  --raw     gzip/plain NDJSON from Firehose (any depth of YYYY/MM/DD/HH folders)
         --labels  labels CSV files (transaction_id,is_fraud,fraud_scenario,label_available_at)
Bad data never fails the job: every rejected record, label and unreadable object is
quarantined by reason (validation.py, labels.py) and counted, and the good ones go on.
Outputs: --output  train/ validation/ test/   CSV, label first, no header (built-in XGBoost)
                   test-ids/                  transaction_id,timestamp,is_fraud,fraud_scenario per test row
                   baseline/baseline.csv      training features with header (drift baseline)
                   schema/feature_schema.json features, split cut-offs, counts
         --quarantine  <reason>.jsonl + counts.json: every rejected record, label and object, and why

Split by time, never at random: validation and test are strictly later than train, as a
deployed model only ever scores the future. Labels: features lag terminal fraud by
LABEL_DELAY_DAYS (all chargebacks are in by then); only rows whose label is known by
--as-of are trained or evaluated on, the others still count as history.

Several hosts: customer and terminal history need every transaction of that customer or
terminal, which ShardedByS3Key would scatter across hosts. So the raw input must be
FullyReplicated (the job refuses otherwise), every host computes features over all
history, and host i writes only the customers whose hash falls to it: the union of the
hosts' outputs equals the single-host output, row for row.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the container's code dir is flat

from features import DESCRIPTIONS, FEATURE_COLUMNS, LABEL_DELAY_DAYS, build_features  # noqa: E402
from labels import Labels, keep_known_transactions, read_labels  # noqa: E402
from validation import Transactions, read_transactions  # noqa: E402

# Where the container's /opt/ml is; the local runner points it at a scratch directory.
OPT_ML = Path(os.environ.get("FRAUDLAB_OPT_ML", "/opt/ml"))
SPLITS = ("train", "validation", "test")



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="FraudLab feature engineering")
    base = OPT_ML / "processing"
    parser.add_argument("--raw", type=Path, default=base / "input/raw")
    parser.add_argument("--labels", type=Path, default=base / "input/labels")
    parser.add_argument("--output", type=Path, default=base / "output/features")
    parser.add_argument("--quarantine", type=Path, default=base / "output/quarantine")
    parser.add_argument("--train-fraction", type=float, default=0.70)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--as-of", default=None, help="labels known at this UTC time (default: now)")
    args = parser.parse_args(argv)
    if not 0 < args.train_fraction < 1 or not 0 < args.validation_fraction < 1 - args.train_fraction:
        parser.error("need 0 < train-fraction and 0 < validation-fraction < 1 - train-fraction")
    return args


# --- the cluster ------------------------------------------------------------------------


def cluster() -> tuple[int, int]:
    """(this host's index, number of hosts) from resourceconfig.json; (0, 1) without one."""
    path = OPT_ML / "config/resourceconfig.json"
    if not path.exists():
        return 0, 1
    resource = json.loads(path.read_text())
    return resource["hosts"].index(resource["current_host"]), len(resource["hosts"])


def require_replicated_raw_input(raw_dir: Path, hosts: int) -> None:
    """History features need every row of a customer on the host that writes it."""
    path = OPT_ML / "config/processingjobconfig.json"
    if hosts == 1 or not path.exists():
        return
    for item in json.loads(path.read_text()).get("ProcessingInputs", []):
        s3 = item.get("S3Input", {})
        if Path(s3.get("LocalPath", "")) == raw_dir and s3.get("S3DataDistributionType") == "ShardedByS3Key":
            raise SystemExit(
                "raw input is ShardedByS3Key over several hosts: customer/terminal history would be split; "
                "use FullyReplicated (each host then writes only its own customers)"
            )


# --- labels ---------------------------------------------------------------------------------


def join_labels(transaction_ids: pd.Series, labels: pa.Table) -> tuple[pd.Series, pd.Series]:
    """(is_fraud as float, NaN where not known yet; fraud_scenario, 'unknown' where not known)."""
    at = pc.index_in(pa.array(transaction_ids.array), value_set=labels.column("transaction_id").combine_chunks())
    is_fraud = pd.Series(labels.column("is_fraud").take(at).to_numpy(zero_copy_only=False), index=transaction_ids.index, dtype=float)
    scenario = pd.Series(labels.column("fraud_scenario").take(at).to_pandas(), index=transaction_ids.index).fillna("unknown")
    return is_fraud, scenario


# --- splitting and sharding ---------------------------------------------------------------


def time_split(timestamps: pd.Series, train_fraction: float, validation_fraction: float) -> tuple[np.ndarray, pd.Timestamp, pd.Timestamp]:
    """SPLITS name per row by time cut-offs at the given row fractions.
    Rows at a cut-off instant go to the later set, so later sets are strictly later."""
    ordered = timestamps.sort_values(kind="stable")
    first_cut = ordered.iloc[int(len(ordered) * train_fraction)]
    second_cut = ordered.iloc[min(int(len(ordered) * (train_fraction + validation_fraction)), len(ordered) - 1)]
    split = np.full(len(timestamps), "train", dtype="<U10")
    split[(timestamps >= first_cut).to_numpy()] = "validation"
    split[(timestamps >= second_cut).to_numpy()] = "test"
    return split, first_cut, second_cut


def host_of(customer_ids: pd.Series, hosts: int) -> np.ndarray:
    """A stable host index per customer (md5, not Python's salted hash)."""
    codes, distinct = pd.factorize(customer_ids)
    per_customer = np.array([int(hashlib.md5(c.encode()).hexdigest()[:8], 16) % hosts for c in distinct], dtype=int)
    return per_customer[codes]


# --- writing ------------------------------------------------------------------------------


def write_outputs(
    out: Path, host: str, tx: pd.DataFrame, features: pd.DataFrame, labels: pd.Series, split: np.ndarray, scenario: pd.Series, mine: np.ndarray
) -> dict[str, int]:
    """This host's labelled rows (`mine`): the three splits, the test ids and the drift baseline.
    Each value is formatted once; the files are written by two threads (arrow frees the GIL)."""
    columns = [labels.to_numpy(float), *(features[name].to_numpy(float) for name in FEATURE_COLUMNS)]
    rows = {name: np.flatnonzero(mine & (split == name)) for name in SPLITS}
    with ThreadPoolExecutor(2) as pool:
        table = pa.table(list(pool.map(csv_column, columns)), names=["is_fraud", *FEATURE_COLUMNS])
        files = [(out / name / f"part-{host}.csv", table.take(rows[name]), False) for name in SPLITS]
        files.append((out / "baseline" / f"baseline-{host}.csv", files[0][1].drop_columns(["is_fraud"]), True))
        written = [pool.submit(write_csv, *file) for file in files]
        write_test_ids(out / "test-ids" / f"part-{host}.csv", tx, labels, scenario, rows["test"])
        for file in written:
            file.result()
    return {name: len(rows[name]) for name in SPLITS}


def write_test_ids(path: Path, tx: pd.DataFrame, labels: pd.Series, scenario: pd.Series, test: np.ndarray) -> None:
    """Which payment each test row is, for the evaluation's per-scenario figures."""
    ids = pd.DataFrame({
        "transaction_id": tx["transaction_id"].to_numpy()[test],
        "timestamp": pandas_text(tx["timestamp"].iloc[test]),
        "is_fraud": labels.to_numpy()[test].astype(int),
        "fraud_scenario": scenario.to_numpy()[test],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    ids.to_csv(path, index=False)


def write_csv(path: Path, table: pa.Table, header: bool) -> None:
    """Numbers as CSV without quotes, written by arrow in C (np.savetxt formats value by
    value in Python: several times slower)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        if header:
            stream.write((",".join(table.column_names) + "\n").encode())
        pa_csv.write_csv(table, stream, pa_csv.WriteOptions(include_header=False, quoting_style="none"))


def csv_column(values: np.ndarray) -> np.ndarray:
    """A column as it is written: 6 significant digits, whole numbers as integers."""
    rounded = significant_digits(values)
    if np.array_equal(rounded, np.trunc(rounded)) and np.abs(rounded).max(initial=0) < 2**53:
        return rounded.astype(np.int64)
    return rounded


def pandas_text(timestamps: pd.Series) -> np.ndarray:
    """UTC timestamps as pandas' to_csv writes them ("2026-10-20 12:34:56+00:00"), in C
    when they are whole seconds (the stream's own), else by pandas itself."""
    nanoseconds = timestamps.array.asi8
    if (nanoseconds % 10**9).any():
        return timestamps.astype(str).to_numpy()
    seconds = pa.array(nanoseconds // 10**9, pa.timestamp("s"))
    return pc.binary_join_element_wise(pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S"), "+00:00", "").to_numpy(zero_copy_only=False)


def significant_digits(values: np.ndarray, digits: int = 6) -> np.ndarray:
    """`values` rounded to `digits` significant digits as "%.6g" rounds them, as the nearest
    doubles (so their shortest text is what "%.6g" prints). Whole numbers are left alone."""
    values = np.asarray(values, float)
    if not values.size or (np.array_equal(values, np.round(values)) and np.abs(values).max() < 10**digits):
        return values
    magnitude = np.floor(np.log10(np.abs(values), out=np.zeros_like(values), where=values != 0))
    shift = digits - 1 - magnitude
    up, down = 10.0 ** np.maximum(shift, 0), 10.0 ** np.maximum(-shift, 0)  # exact powers of ten
    scaled = values * up / down
    rounded = np.round(scaled) * down / up  # an integer and a power of ten: correctly rounded
    # Near a tie the product's own rounding can tip the result: let printf decide those few.
    for i in np.flatnonzero(np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) < 1e-6):
        rounded[i] = float(f"{values[i]:.{digits}g}")
    return rounded


def write_quarantine(directory: Path, landed: Transactions, labels: Labels) -> dict[str, int]:
    """One <reason>.jsonl per reason that has entries, and counts.json with every reason."""
    entries: dict[str, list[dict]] = {}
    for reason, lines in landed.rejected.items():
        entries[reason] = [{"reason": reason, "record": line} for line in lines]
    entries["corrupt_object"] = [{"reason": "corrupt_object", **item} for item in landed.corrupt_objects]
    for reason, rows in labels.rejected.items():
        entries[reason] = [{"reason": reason, "record": row} for row in rows]
    entries["label_bad_file"] = [{"reason": "label_bad_file", **item} for item in labels.bad_files]
    directory.mkdir(parents=True, exist_ok=True)
    for reason, items in entries.items():
        if items:
            (directory / f"{reason}.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    counts = {**landed.counts(), **labels.counts()}
    (directory / "counts.json").write_text(json.dumps(counts, indent=2))
    return counts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host_index, hosts = cluster()
    host = f"algo-{host_index + 1}"
    require_replicated_raw_input(args.raw, hosts)
    as_of = pd.Timestamp(args.as_of, tz="UTC") if args.as_of else pd.Timestamp.now(tz="UTC")

    with ThreadPoolExecutor(1) as background:
        reading = background.submit(read_labels, args.labels, as_of)  # arrow's C code: overlaps the stream's reading
        landed = read_transactions(args.raw, not_after=as_of)
        labels = reading.result()
    tx = landed.frame
    keep_known_transactions(labels, pa.array(tx["transaction_id"].array) if len(tx) else pa.array([], pa.string()))
    quarantine_counts = {**landed.counts(), **labels.counts()}
    if host_index == 0:  # every host saw the same input; one report is enough
        quarantine_counts = write_quarantine(args.quarantine, landed, labels)
    if tx.empty:
        rejected = ", ".join(f"{reason} {count}" for reason, count in quarantine_counts.items() if count) or "none"
        raise SystemExit(f"no valid transactions under {args.raw} ({landed.lines} lines read; quarantined: {rejected}): stream some first (step 01)")
    is_fraud, scenario = join_labels(tx["transaction_id"], labels.table)
    features = build_features(tx, is_fraud.fillna(0), threads=2)

    split, first_cut, second_cut = time_split(tx["timestamp"], args.train_fraction, args.validation_fraction)
    mine = (host_of(tx["customer_id"], hosts) == host_index) & is_fraud.notna().to_numpy()
    counts = write_outputs(args.output, host, tx, features, is_fraud, split, scenario, mine)

    if host_index == 0:
        schema = {
            "label": "is_fraud",
            "features": [{"name": name, "type": "float", "description": DESCRIPTIONS[name]} for name in FEATURE_COLUMNS],
            "format": "CSV, no header, label first (built-in XGBoost)",
            "label_delay_days": LABEL_DELAY_DAYS,
            "labels_known_as_of": as_of.isoformat(),
            "split": {"validation_from": first_cut.isoformat(), "test_from": second_cut.isoformat()},
            "rows": {
                "read": landed.lines, "valid": len(tx), "labelled": int(is_fraud.notna().sum()),
                "labels_not_yet_known": labels.not_yet_known, "quarantined": quarantine_counts,
            },
            "splits": {
                name: {"rows": int(((split == name) & is_fraud.notna()).sum()), "fraud": int(is_fraud[split == name].sum())}
                for name in SPLITS
            },
            "hosts": hosts,
        }
        (args.output / "schema").mkdir(parents=True, exist_ok=True)
        (args.output / "schema" / "feature_schema.json").write_text(json.dumps(schema, indent=2))

    print(json.dumps({"host": host, "lines": landed.lines, "valid": len(tx), "written": counts, "quarantined": quarantine_counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
