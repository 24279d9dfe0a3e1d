"""SageMaker Processing entrypoint: landed transactions + labels -> XGBoost-ready datasets.

Container contract (SageMaker Processing): inputs and outputs under /opt/ml/processing/,
the request mirrored in /opt/ml/config/processingjobconfig.json, the cluster in
/opt/ml/config/resourceconfig.json ({"current_host": "algo-1", "hosts": [...]}).

Inputs:  --raw     gzip/plain NDJSON from Firehose (any depth of YYYY/MM/DD/HH folders)
         --labels  labels CSV files (transaction_id,is_fraud,fraud_scenario,label_available_at)
Bad data never fails the job: every rejected record, label and unreadable object is
quarantined by reason (validation.py, labels.py) and counted, and the good ones go on.
Outputs: --output  train/ validation/ test/   CSV, label first, no header (built-in XGBoost)
                   validation-ids/ test-ids/  per row of that set: transaction_id, timestamp,
                                              customer_id, is_fraud, fraud_scenario,
                                              card_known_compromised (a fraud on the card was
                                              known before that day: a fraud team blocks it)
                   baseline/baseline.csv      training features with header (drift baseline)
                   schema/feature_schema.json features, label delay, split periods, counts
         --quarantine  <reason>.jsonl + counts.json: every rejected record, label and object, and why

Labels arrive late: a fraud's chargeback within --label-delay-days (the data's documented
delay, default features.LABEL_DELAY_DAYS), and a payment with none by then is legitimate.
So (1) terminal fraud rates end one delay before each payment, where every label is known;
(2) only payments older than the delay at --as-of are trained or evaluated on ("mature"):
filtering on "label known" instead would keep recent frauds (fast chargebacks) and drop
recent legitimate payments, inflating the fraud rate; younger payments still count as
history; (3) the split is by time with a gap of --gap-days (default: the delay) before
validation and before test, so that validation starts after every training label is
known and test after every validation label, as when a model trained today scores
tomorrow's payments. Rows in the gaps are history only. Labels that arrived later than the
delay are counted in the schema (late_labels): they mean the delay is set too short.

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
from training import scale_pos_weight  # noqa: E402
from validation import Transactions, read_transactions  # noqa: E402

# Where the container's /opt/ml is; the local runner points it at a scratch directory.
OPT_ML = Path(os.environ.get("FRAUDLAB_OPT_ML", "/opt/ml"))
SPLITS = ("train", "validation", "test")
ID_SETS = ("validation", "test")  # the sets the evaluation needs per payment
DAY = pd.Timedelta(days=1)
# Rows only, no quotes (numbers and plain strings); a header, where wanted, is csv_header's line.
ROWS_ONLY = pa_csv.WriteOptions(include_header=False, quoting_style="none")



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
    parser.add_argument("--label-delay-days", type=float, default=LABEL_DELAY_DAYS, help="longest chargeback delay of the data")
    parser.add_argument("--gap-days", type=float, default=None, help="gap before validation and before test (default: the label delay)")
    args = parser.parse_args(argv)
    if not 0 < args.train_fraction < 1 or not 0 < args.validation_fraction < 1 - args.train_fraction:
        parser.error("need 0 < train-fraction and 0 < validation-fraction < 1 - train-fraction")
    if args.label_delay_days <= 0:
        parser.error("--label-delay-days must be positive")
    if args.gap_days is None:
        args.gap_days = args.label_delay_days
    if args.gap_days < 0:
        parser.error("--gap-days must be 0 or more")
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


def join_labels(index: pd.Index, labels: pa.Table, at: pa.Array) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The label of each payment (row `at` of `labels`, null where none is known): (is_fraud as
    float, NaN where not known yet; fraud_scenario, 'unknown' where not known; label_available_at,
    NaT where not known), on the payments' `index`."""
    is_fraud = pd.Series(labels.column("is_fraud").take(at).to_numpy(zero_copy_only=False), index=index, dtype=float)
    scenario = pd.Series(labels.column("fraud_scenario").take(at).to_pandas(), index=index).fillna("unknown")
    available = pd.Series(labels.column("available_at").take(at).to_pandas(), index=index)
    return is_fraud, scenario, available


def card_known_compromised(tx: pd.DataFrame, is_fraud: pd.Series, available: pd.Series) -> np.ndarray:
    """Per payment: a fraud on its card (customer) had been reported before the payment's
    day began. A fraud team blocks such a card; its later payments say nothing about a model."""
    reported = available.where(is_fraud == 1)  # NaT unless a known fraud
    first_report = reported.groupby(tx["customer_id"].to_numpy()).transform("min")
    day_start = tx["timestamp"].dt.floor("D")
    return (first_report < day_start).fillna(False).to_numpy(bool)


# --- splitting and sharding ---------------------------------------------------------------


def time_split(timestamps: pd.Series, mature_until: pd.Timestamp, train_fraction: float, validation_fraction: float, gap: pd.Timedelta) -> tuple[np.ndarray, dict[str, str]]:
    """A set name per row: train, gap, validation, gap, test along time up to `mature_until`
    (the periods' lengths in the fractions given, after the two gaps), "maturing" after.
    Each period includes its start and excludes its end; the periods as ISO times."""
    start = timestamps.min()
    end = min(mature_until, timestamps.max() + pd.Timedelta(seconds=1))  # test ends here (exclusive)
    usable = end - start - 2 * gap
    if usable <= pd.Timedelta(0):
        raise SystemExit(
            f"the mature data spans {(end - start) / DAY:.1f} days (payments older than the label delay at --as-of); "
            f"train, validation and test with two gaps of {gap / DAY:g} days need more: stream more days, "
            "pass a later --as-of, or a smaller --gap-days"
        )
    validation_from = start + usable * train_fraction + gap
    test_from = validation_from + usable * validation_fraction + gap
    edges = {"train": start, "gap_1": validation_from - gap, "validation": validation_from, "gap_2": test_from - gap, "test": test_from, "maturing": end}
    split = np.full(len(timestamps), "train", dtype="<U10")
    for name, edge in list(edges.items())[1:]:
        split[(timestamps >= edge).to_numpy()] = name.split("_")[0]
    periods = {name: edge.isoformat() for name, edge in edges.items()}
    return split, periods


def host_of(customer_ids: pd.Series, hosts: int) -> np.ndarray:
    """A stable host index per customer (md5, not Python's salted hash)."""
    codes, distinct = pd.factorize(customer_ids)
    per_customer = np.array([int(hashlib.md5(c.encode()).hexdigest()[:8], 16) % hosts for c in distinct], dtype=int)
    return per_customer[codes]


# --- writing ------------------------------------------------------------------------------


def write_outputs(
    out: Path, host: str, tx: pd.DataFrame, features: pd.DataFrame, labels: pd.Series, split: np.ndarray, scenario: pd.Series,
    blocked: np.ndarray, mine: np.ndarray,
) -> dict[str, int]:
    """This host's labelled rows (`mine`): the three splits, their ids and the drift baseline.
    Each value is formatted once; the files are written by two threads (arrow frees the GIL)."""
    columns = [labels.to_numpy(float), *(features[name].to_numpy(float) for name in FEATURE_COLUMNS)]
    rows = {name: np.flatnonzero(mine & (split == name)) for name in SPLITS}
    with ThreadPoolExecutor(2) as pool:
        table = pa.table(list(pool.map(csv_column, columns)), names=["is_fraud", *FEATURE_COLUMNS])
        written = [pool.submit(write_train_and_baseline, out / "train" / f"part-{host}.csv", out / "baseline" / f"baseline-{host}.csv",
                               table.take(rows["train"]))]
        written += [pool.submit(write_csv, out / name / f"part-{host}.csv", table.take(rows[name]), False) for name in SPLITS[1:]]
        written += [pool.submit(write_csv, out / f"{name}-ids" / f"part-{host}.csv", ids_table(tx, labels, scenario, blocked, rows[name]), True)
                    for name in ID_SETS]
        for file in written:
            file.result()
    return {name: len(rows[name]) for name in SPLITS}


def ids_table(tx: pd.DataFrame, labels: pd.Series, scenario: pd.Series, blocked: np.ndarray, rows: np.ndarray) -> pa.Table:
    """Which payment each row of a set is, for the evaluation's per-day, per-card and
    per-scenario figures (same row order as the set's CSV)."""
    at = pa.array(rows)
    return pa.table({  # the string columns taken in arrow: no Python object per row
        "transaction_id": pa.array(tx["transaction_id"].array).take(at).cast(pa.string()),
        "timestamp": pandas_text(tx["timestamp"].iloc[rows]),
        "customer_id": pa.array(tx["customer_id"].array).take(at).cast(pa.string()),
        "is_fraud": labels.to_numpy()[rows].astype(np.int64),
        "fraud_scenario": pa.array(scenario.to_numpy()[rows], pa.string()),
        "card_known_compromised": blocked[rows].astype(np.int64),
    })


def write_train_and_baseline(train_path: Path, baseline_path: Path, train: pa.Table, rows_at_a_time: int = 65536) -> None:
    """The training rows (label first) and the drift baseline (their features, with a header).
    A baseline line is a training line without its label, and the label is 0 or 1: so each
    block of training text, once formatted, is written again without its lines' first two
    bytes: the numbers are formatted once, not twice."""
    for path in (train_path, baseline_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with train_path.open("wb") as train_file, baseline_path.open("wb") as baseline_file:
        baseline_file.write(csv_header(train.column_names[1:]))
        for batch in train.to_batches(max_chunksize=rows_at_a_time):
            text = pa.BufferOutputStream()
            pa_csv.write_csv(pa.Table.from_batches([batch]), text, ROWS_ONLY)
            block = np.frombuffer(text.getvalue(), np.uint8)
            train_file.write(block.tobytes())
            starts = np.r_[0, np.flatnonzero(block[:-1] == ord("\n")) + 1] if block.size else np.empty(0, np.int64)
            if not (np.isin(block[starts], (ord("0"), ord("1"))).all() and (block[starts + 1] == ord(",")).all()):
                raise ValueError("a training row does not start with a 0/1 label")
            keep = np.ones(block.size, bool)
            keep[starts], keep[starts + 1] = False, False
            baseline_file.write(block[keep].tobytes())


def write_csv(path: Path, table: pa.Table, header: bool) -> None:
    """Numbers and plain strings as CSV without quotes, written by arrow in C (np.savetxt
    formats value by value in Python: several times slower). A string that needs quotes (a
    comma, quote or line break: legal in a stream's ids) sends the table through pandas,
    which quotes just those values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(pa.types.is_string(column.type) and pc.any(pc.match_substring_regex(column, '[,"\r\n]')).as_py() for column in table.columns):
        table.to_pandas().to_csv(path, index=False, header=header)
        return
    with path.open("wb") as stream:
        if header:
            stream.write(csv_header(table.column_names))
        pa_csv.write_csv(table, stream, ROWS_ONLY)


def csv_header(names: list[str]) -> bytes:
    return (",".join(names) + "\n").encode()


def csv_column(values: np.ndarray) -> np.ndarray:
    """A column as it is written: 6 significant digits, whole numbers as integers."""
    rounded = significant_digits(values)
    if np.array_equal(rounded, np.trunc(rounded)) and np.abs(rounded).max(initial=0) < 2**53:
        return rounded.astype(np.int64)
    return rounded


def pandas_text(timestamps: pd.Series) -> pa.Array:
    """UTC timestamps as pandas' to_csv writes them ("2026-10-20 12:34:56+00:00"), by arrow's
    cast when they are whole seconds (the stream's own; far faster than its strftime), else by pandas itself."""
    nanoseconds = timestamps.array.asi8
    if (nanoseconds % 10**9).any():
        return pa.array(timestamps.astype(str).to_numpy(), pa.string())
    seconds = pa.array(nanoseconds // 10**9, pa.timestamp("s"))
    return pc.binary_join_element_wise(pc.cast(seconds, pa.string()), "+00:00", "")


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

    def quarantined() -> dict[str, int]:
        """Counts by reason; host 0 also writes the quarantine (every host saw the same input)."""
        return write_quarantine(args.quarantine, landed, labels) if host_index == 0 else {**landed.counts(), **labels.counts()}

    if tx.empty:
        keep_known_transactions(labels, pa.array([], pa.string()))
        rejected = ", ".join(f"{reason} {count}" for reason, count in quarantined().items() if count) or "none"
        raise SystemExit(f"no valid transactions under {args.raw} ({landed.lines} lines read; quarantined: {rejected}): stream some first (step 01)")
    joined: dict[str, pd.Series] = {}

    def labels_of_payments() -> pd.Series:
        """The payments' labels (those of no payment rejected), joined while build_features
        computes the families that need none."""
        at = keep_known_transactions(labels, pa.array(tx["transaction_id"].array))
        joined["is_fraud"], joined["scenario"], joined["available"] = join_labels(tx.index, labels.table, at)
        return joined["is_fraud"].fillna(0)

    features = build_features(tx, labels_of_payments, threads=2, label_delay_days=args.label_delay_days)
    is_fraud, scenario, available = joined["is_fraud"], joined["scenario"], joined["available"]
    quarantine_counts = quarantined()
    delay, gap = pd.Timedelta(days=args.label_delay_days), pd.Timedelta(days=args.gap_days)
    late = int((available - tx["timestamp"] > delay).sum())  # labels the terminal windows could see too early

    split, periods = time_split(tx["timestamp"], as_of - delay, args.train_fraction, args.validation_fraction, gap)
    blocked = card_known_compromised(tx, is_fraud, available)
    mine = (host_of(tx["customer_id"], hosts) == host_index) & is_fraud.notna().to_numpy()
    counts = write_outputs(args.output, host, tx, features, is_fraud, split, scenario, blocked, mine)

    if host_index == 0:
        known = is_fraud.notna().to_numpy()
        schema = {
            "label": "is_fraud",
            "features": [{"name": name, "type": "float", "description": DESCRIPTIONS[name]} for name in FEATURE_COLUMNS],
            "format": "CSV, no header, label first (built-in XGBoost)",
            "label_delay_days": args.label_delay_days,
            "gap_days": args.gap_days,
            "labels_known_as_of": as_of.isoformat(),
            "split": {"validation_from": periods["validation"], "test_from": periods["test"], "periods": periods},
            "rows": {
                "read": landed.lines, "valid": len(tx), "labelled": int(known.sum()),
                "labels_not_yet_known": labels.not_yet_known, "late_labels": late, "quarantined": quarantine_counts,
                **{f"{name}_history_only": int((split == name).sum()) for name in ("gap", "maturing")},
            },
            "splits": {
                name: {
                    "rows": int(((split == name) & known).sum()),
                    "fraud": int(is_fraud[split == name].sum()),
                    "unlabelled": int(((split == name) & ~known).sum()),
                }
                for name in SPLITS
            },
            "hosts": hosts,
        }
        train = schema["splits"]["train"]
        if train["fraud"]:  # the pipeline's training step reads it (JsonGet on this file)
            schema["training"] = {"scale_pos_weight": f"{scale_pos_weight(train['rows'], train['fraud']):.2f}"}
        # What the pipeline said the landed data was (its DataVersion parameter), if it ran this job.
        schema["data_version"] = os.environ.get("FRAUDLAB_DATA_VERSION")
        (args.output / "schema").mkdir(parents=True, exist_ok=True)
        (args.output / "schema" / "feature_schema.json").write_text(json.dumps(schema, indent=2))

    print(json.dumps({"host": host, "lines": landed.lines, "valid": len(tx), "written": counts, "quarantined": quarantine_counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
