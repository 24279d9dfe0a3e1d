"""SageMaker Processing entrypoint: landed transactions + labels -> XGBoost-ready datasets.

Container contract (SageMaker Processing): inputs and outputs under /opt/ml/processing/,
the request mirrored in /opt/ml/config/processingjobconfig.json, the cluster in
/opt/ml/config/resourceconfig.json ({"current_host": "algo-1", "hosts": [...]}).

Inputs:  --raw     gzip/plain NDJSON from Firehose (any depth of YYYY/MM/DD/HH folders)
         --labels  labels CSV files (transaction_id,is_fraud,fraud_scenario,label_available_at)
Outputs: --output  train/ validation/ test/   CSV, label first, no header (built-in XGBoost)
                   test-ids/                  transaction_id,timestamp,is_fraud,fraud_scenario per test row
                   baseline/baseline.csv      training features with header (drift baseline)
                   schema/feature_schema.json features, split cut-offs, counts
         --quarantine  <reason>.jsonl + counts.json: every rejected record and why

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
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the container's code dir is flat

from features import DESCRIPTIONS, FEATURE_COLUMNS, LABEL_DELAY_DAYS, build_features  # noqa: E402
from records import decode_object  # noqa: E402

# Where the container's /opt/ml is; the local runner points it at a scratch directory.
OPT_ML = Path(os.environ.get("FRAUDLAB_OPT_ML", "/opt/ml"))

STRING_FIELDS = ("transaction_id", "customer_id", "terminal_id", "merchant_category", "device_fingerprint")
NUMBER_FIELDS = ("amount", "location_distance_km", "time_since_last_txn_hours")
REQUIRED_FIELDS = STRING_FIELDS + NUMBER_FIELDS + ("timestamp", "is_international")
REASONS = ("bad_json", "missing_field", "wrong_type", "negative_amount", "duplicate")


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


# --- reading and validating ---------------------------------------------------------------


def read_lines(raw_dir: Path) -> list[str]:
    files = sorted(p for p in raw_dir.rglob("*") if p.is_file())
    return [line for path in files for line in decode_object(path.read_bytes())]


def validate(lines: list[str]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Split lines into valid transactions and rejected ones, by reason (first reason wins)."""
    rejected: dict[str, list[str]] = {reason: [] for reason in REASONS}
    records, sources = [], []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            rejected["bad_json"].append(line)
            continue
        if not isinstance(record, dict):
            rejected["bad_json"].append(line)
            continue
        records.append(record)
        sources.append(line)
    frame = pd.DataFrame.from_records(records, columns=list(REQUIRED_FIELDS)) if records else pd.DataFrame(columns=list(REQUIRED_FIELDS))
    source = pd.Series(sources, index=frame.index, dtype=object)

    missing = frame[list(REQUIRED_FIELDS)].isna().any(axis=1)
    wrong = pd.Series(False, index=frame.index)
    for field in NUMBER_FIELDS:
        wrong |= ~_is_number(frame[field])
    for field in STRING_FIELDS:
        wrong |= ~_is_text(frame[field])
    wrong |= ~_is_flag(frame["is_international"])
    timestamps = pd.to_datetime(frame["timestamp"].where(frame["timestamp"].map(lambda v: isinstance(v, str))), utc=True, errors="coerce", format="ISO8601")
    wrong |= timestamps.isna()
    wrong &= ~missing
    negative = ~missing & ~wrong & (pd.to_numeric(frame["amount"], errors="coerce") < 0)
    valid = ~(missing | wrong | negative)
    duplicate = valid & frame["transaction_id"].where(valid).duplicated(keep="first")
    valid &= ~duplicate

    for reason, mask in (("missing_field", missing), ("wrong_type", wrong), ("negative_amount", negative), ("duplicate", duplicate)):
        rejected[reason].extend(source[mask].tolist())
    tx = frame[valid].copy()
    tx["timestamp"] = timestamps[valid]
    for field in NUMBER_FIELDS:
        tx[field] = tx[field].astype(float)
    tx["is_international"] = tx["is_international"].astype(int)
    return tx.sort_values(["timestamp", "transaction_id"], kind="stable").reset_index(drop=True), rejected


# Type checks: a whole-column test first (the common, all-valid case), per value only if mixed.


def _is_number(values: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(values, skipna=True) in ("floating", "integer", "mixed-integer-float"):
        return pd.Series(np.isfinite(values.to_numpy(float)), index=values.index)
    return values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v))


def _is_text(values: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(values, skipna=True) == "string":
        return values.notna() & (values != "")
    return values.map(lambda v: isinstance(v, str) and v != "")


def _is_flag(values: pd.Series) -> pd.Series:
    # A column of 0/1 with gaps (missing fields) arrives as float: 0.0 and 1.0 are fine.
    if pd.api.types.infer_dtype(values, skipna=True) in ("integer", "boolean", "floating"):
        return values.isin([0, 1])
    return values.map(lambda v: isinstance(v, (int, bool)) and v in (0, 1))


def read_labels(labels_dir: Path, as_of: pd.Timestamp) -> pd.DataFrame:
    """Labels known at `as_of`, one per transaction (the latest delivery wins)."""
    files = sorted(p for p in labels_dir.rglob("*.csv") if p.is_file())
    if not files:
        return pd.DataFrame(columns=["transaction_id", "is_fraud", "fraud_scenario"])
    labels = pd.concat([pd.read_csv(p, dtype={"transaction_id": str}) for p in files], ignore_index=True)
    known = pd.to_datetime(labels["label_available_at"], utc=True) <= as_of
    return labels[known].drop_duplicates("transaction_id", keep="last")[["transaction_id", "is_fraud", "fraud_scenario"]]


# --- splitting and sharding ---------------------------------------------------------------


def time_split(timestamps: pd.Series, train_fraction: float, validation_fraction: float) -> tuple[pd.Series, pd.Timestamp, pd.Timestamp]:
    """'train' / 'validation' / 'test' per row by time cut-offs at the given row fractions.
    Rows at a cut-off instant go to the later set, so later sets are strictly later."""
    ordered = timestamps.sort_values(kind="stable")
    first_cut = ordered.iloc[int(len(ordered) * train_fraction)]
    second_cut = ordered.iloc[min(int(len(ordered) * (train_fraction + validation_fraction)), len(ordered) - 1)]
    split = pd.Series("train", index=timestamps.index)
    split[timestamps >= first_cut] = "validation"
    split[timestamps >= second_cut] = "test"
    return split, first_cut, second_cut


def host_of(customer_ids: pd.Series, hosts: int) -> np.ndarray:
    """A stable host index per customer (md5, not Python's salted hash)."""
    codes, distinct = pd.factorize(customer_ids)
    per_customer = np.array([int(hashlib.md5(c.encode()).hexdigest()[:8], 16) % hosts for c in distinct], dtype=int)
    return per_customer[codes]


# --- writing ------------------------------------------------------------------------------


def write_outputs(
    out: Path, host: str, tx: pd.DataFrame, features: pd.DataFrame, labels: pd.Series, split: pd.Series, scenario: pd.Series
) -> dict[str, int]:
    counts = {}
    for name in ("train", "validation", "test"):
        rows = split == name
        table = np.column_stack([labels[rows].to_numpy(float), features[rows].to_numpy(float)])
        (out / name).mkdir(parents=True, exist_ok=True)
        write_csv(out / name / f"part-{host}.csv", table)
        counts[name] = int(rows.sum())
    ids = tx.loc[split == "test", ["transaction_id", "timestamp"]].assign(
        is_fraud=labels[split == "test"].astype(int), fraud_scenario=scenario[split == "test"]
    )
    (out / "test-ids").mkdir(parents=True, exist_ok=True)
    ids.to_csv(out / "test-ids" / f"part-{host}.csv", index=False)
    (out / "baseline").mkdir(parents=True, exist_ok=True)
    write_csv(out / "baseline" / f"baseline-{host}.csv", features[split == "train"].to_numpy(float), header=FEATURE_COLUMNS)
    return counts


def write_csv(path: Path, values: np.ndarray, header: list[str] | None = None) -> None:
    """Numbers as CSV with 6 significant digits (np.savetxt: several times faster than pandas)."""
    with path.open("w") as stream:
        if header:
            stream.write(",".join(header) + "\n")
        np.savetxt(stream, values, fmt="%.6g", delimiter=",")


def write_quarantine(directory: Path, rejected: dict[str, list[str]]) -> dict[str, int]:
    directory.mkdir(parents=True, exist_ok=True)
    counts = {reason: len(lines) for reason, lines in rejected.items()}
    for reason, lines in rejected.items():
        if lines:
            (directory / f"{reason}.jsonl").write_text("".join(json.dumps({"reason": reason, "record": line}) + "\n" for line in lines))
    (directory / "counts.json").write_text(json.dumps(counts, indent=2))
    return counts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host_index, hosts = cluster()
    host = f"algo-{host_index + 1}"
    require_replicated_raw_input(args.raw, hosts)
    as_of = pd.Timestamp(args.as_of, tz="UTC") if args.as_of else pd.Timestamp.now(tz="UTC")

    lines = read_lines(args.raw)
    tx, rejected = validate(lines)
    if tx.empty:
        raise SystemExit(f"no valid transactions under {args.raw} ({len(lines)} lines read): stream some first (step 01)")
    labels = read_labels(args.labels, as_of).set_index("transaction_id")
    is_fraud = tx["transaction_id"].map(labels["is_fraud"])
    scenario = tx["transaction_id"].map(labels["fraud_scenario"]).fillna("unknown")
    features = build_features(tx, is_fraud.fillna(0))

    split, first_cut, second_cut = time_split(tx["timestamp"], args.train_fraction, args.validation_fraction)
    mine = (host_of(tx["customer_id"], hosts) == host_index) & is_fraud.notna().to_numpy()
    counts = write_outputs(args.output, host, tx[mine], features[mine], is_fraud[mine], split[mine], scenario[mine])

    quarantine_counts = {reason: len(r) for reason, r in rejected.items()}
    if host_index == 0:  # every host saw the same input; one report is enough
        quarantine_counts = write_quarantine(args.quarantine, rejected)
        schema = {
            "label": "is_fraud",
            "features": [{"name": name, "type": "float", "description": DESCRIPTIONS[name]} for name in FEATURE_COLUMNS],
            "format": "CSV, no header, label first (built-in XGBoost)",
            "label_delay_days": LABEL_DELAY_DAYS,
            "labels_known_as_of": as_of.isoformat(),
            "split": {"validation_from": first_cut.isoformat(), "test_from": second_cut.isoformat()},
            "rows": {"read": len(lines), "valid": len(tx), "labelled": int(is_fraud.notna().sum()), "quarantined": quarantine_counts},
            "splits": {
                name: {"rows": int(((split == name) & is_fraud.notna()).sum()), "fraud": int(is_fraud[split == name].sum())}
                for name in ("train", "validation", "test")
            },
            "hosts": hosts,
        }
        (args.output / "schema").mkdir(parents=True, exist_ok=True)
        (args.output / "schema" / "feature_schema.json").write_text(json.dumps(schema, indent=2))

    print(json.dumps({"host": host, "lines": len(lines), "valid": len(tx), "written": counts, "quarantined": quarantine_counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
