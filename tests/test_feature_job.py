"""The processing job run for real on generated data: outputs, quarantine, time split, shards."""
from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit.corruption import KINDS, corrupted_records
from labkit.transactions import generate
from processing import feature_job, labels, validation
from processing.features import FEATURE_COLUMNS, LABEL_DELAY_DAYS

JOB = Path(feature_job.__file__)
AS_OF = "2027-01-01T00:00:00"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Raw input as Firehose leaves it (gzip NDJSON in hour folders) plus 25 bad records."""
    root = tmp_path_factory.mktemp("job-inputs")
    data = generate(8_000, seed=31)
    lines = [json.dumps(r).encode() + b"\n" for r in data.transactions.to_dict("records")]
    bad, _ = corrupted_records(data.transactions, 30)
    lines[100:100] = bad  # malformed records arrive mixed in, not at the end
    for index in range(0, len(lines), 1_000):
        folder = root / "raw" / f"2026/11/23/{10 + index // 4_000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = b"".join(lines[index : index + 1_000])
        (folder / f"part-{index}.gz").write_bytes(gzip.compress(body) if index % 2000 == 0 else body)
    (root / "labels").mkdir()
    data.labels.to_csv(root / "labels" / "labels.csv", index=False)
    return root, data


def run_job(inputs_root: Path, out: Path, opt_ml: Path | None = None, *extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    if opt_ml is not None:
        env["FRAUDLAB_OPT_ML"] = str(opt_ml)
    return subprocess.run(
        [sys.executable, str(JOB), "--raw", str(inputs_root / "raw"), "--labels", str(inputs_root / "labels"),
         "--output", str(out / "features"), "--quarantine", str(out / "quarantine"), "--as-of", AS_OF, *extra],
        env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    result = run_job(inputs[0], out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def read_split(out: Path, name: str) -> np.ndarray:
    parts = sorted((out / "features" / name).glob("*.csv"))
    return np.vstack([np.loadtxt(p, delimiter=",", ndmin=2) for p in parts])


def test_outputs_follow_the_builtin_xgboost_format(single):
    train = read_split(single, "train")
    assert train.shape[1] == 1 + len(FEATURE_COLUMNS)
    assert set(np.unique(train[:, 0])) == {0.0, 1.0}  # label first
    first_line = next((single / "features/train").glob("*.csv")).read_text().splitlines()[0]
    assert not any(c.isalpha() for c in first_line.replace("e-", "").replace("e+", "")), "no header"
    baseline = pd.read_csv(next((single / "features/baseline").glob("*.csv")))
    assert list(baseline.columns) == FEATURE_COLUMNS


def test_every_malformed_record_is_quarantined_by_reason_and_no_valid_row_lost(inputs, single):
    counts = json.loads((single / "quarantine/counts.json").read_text())
    assert {reason: count for reason, count in counts.items() if count} == {kind: 5 for kind in KINDS}
    assert set(counts) >= {*validation.REASONS, "corrupt_object", *labels.QUARANTINED, "label_duplicate", "label_bad_file"}
    assert not (single / "quarantine/duplicate.jsonl").exists()  # an identical copy is kept once, only counted
    for kind in set(KINDS) - {"duplicate"}:
        lines = (single / f"quarantine/{kind}.jsonl").read_text().splitlines()
        assert len(lines) == 5 and all(json.loads(line)["reason"] == kind for line in lines)
    schema = json.loads((single / "features/schema/feature_schema.json").read_text())
    assert schema["rows"]["valid"] == schema["rows"]["labelled"] == 8_000
    written = sum(len(read_split(single, name)) for name in ("train", "validation", "test"))
    assert written == sum(s["rows"] for s in schema["splits"].values())
    assert written + schema["rows"]["gap_history_only"] + schema["rows"]["maturing_history_only"] == 8_000
    frauds_in_gaps = sum(s["fraud"] for s in schema["splits"].values())
    assert frauds_in_gaps <= inputs[1].labels["is_fraud"].sum()


def periods_of(out: Path) -> dict[str, pd.Timestamp]:
    schema = json.loads((out / "features/schema/feature_schema.json").read_text())
    return {name: pd.Timestamp(edge) for name, edge in schema["split"]["periods"].items()}


def test_the_split_leaves_a_label_delay_between_train_validation_and_test(inputs, single):
    """Validation starts once every training label is known, test once every validation
    label is: a model trained today meets payments a label delay later."""
    periods = periods_of(single)
    delay = pd.Timedelta(days=LABEL_DELAY_DAYS)
    assert periods["validation"] - periods["gap_1"] == periods["test"] - periods["gap_2"] == delay
    joined = inputs[1].transactions.merge(inputs[1].labels, on="transaction_id")
    timestamps = pd.to_datetime(joined["timestamp"], utc=True)
    available = pd.to_datetime(joined["label_available_at"], utc=True)
    assert available[timestamps < periods["gap_1"]].max() <= periods["validation"]
    assert available[(timestamps >= periods["validation"]) & (timestamps < periods["gap_2"])].max() <= periods["test"]
    for name, start, end in (("train", "train", "gap_1"), ("validation", "validation", "gap_2"), ("test", "test", "maturing")):
        assert len(read_split(single, name)) == ((timestamps >= periods[start]) & (timestamps < periods[end])).sum(), name
    for name in ("validation", "test"):
        ids = pd.read_csv(next((single / f"features/{name}-ids").glob("*.csv")))
        assert len(ids) == len(read_split(single, name))
        assert (pd.to_datetime(ids["timestamp"], utc=True) >= periods[name]).all()
        np.testing.assert_array_equal(ids["is_fraud"].to_numpy(), read_split(single, name)[:, 0])


def test_an_as_of_close_to_the_data_does_not_bias_the_class_balance(inputs, tmp_path):
    """Fraud labels arrive in 1-7 days, legitimate ones after 7: keeping "rows with a known
    label" would keep recent frauds and drop recent legitimate payments. Only payments older
    than the delay are used, so every set holds all of its period's payments."""
    joined = inputs[1].transactions.merge(inputs[1].labels, on="transaction_id")
    timestamps = pd.to_datetime(joined["timestamp"], utc=True)
    as_of = timestamps.max() + pd.Timedelta(days=1)
    result = run_job(inputs[0], tmp_path, None, "--as-of", as_of.strftime("%Y-%m-%dT%H:%M:%S"))
    assert result.returncode == 0, result.stderr
    periods = periods_of(tmp_path)
    assert periods["maturing"] <= as_of - pd.Timedelta(days=LABEL_DELAY_DAYS)
    for name, start, end in (("train", "train", "gap_1"), ("validation", "validation", "gap_2"), ("test", "test", "maturing")):
        truth = joined["is_fraud"][(timestamps >= periods[start]) & (timestamps < periods[end])]
        written = read_split(tmp_path, name)[:, 0]
        assert len(written) == len(truth) and written.sum() == truth.sum(), name


def test_terminal_windows_and_known_compromised_cards_use_only_labels_known_then(inputs, single):
    ids = pd.read_csv(next((single / "features/test-ids").glob("*.csv")))
    joined = inputs[1].transactions.merge(inputs[1].labels, on="transaction_id")
    reported = joined[joined["is_fraud"] == 1].assign(at=lambda f: pd.to_datetime(f["label_available_at"], utc=True))
    first_report = reported.groupby("customer_id")["at"].min()
    for row in ids.sample(200, random_state=3).itertuples():
        day = pd.Timestamp(row.timestamp).floor("D")
        known = row.customer_id in first_report and first_report[row.customer_id] < day
        assert row.card_known_compromised == int(known)


def test_labels_later_than_the_delay_are_counted_as_a_delay_set_too_short(inputs, single, tmp_path):
    schema = json.loads((single / "features/schema/feature_schema.json").read_text())
    assert schema["rows"]["late_labels"] == 0 and schema["label_delay_days"] == LABEL_DELAY_DAYS
    result = run_job(inputs[0], tmp_path, None, "--label-delay-days", "2")
    assert result.returncode == 0, result.stderr
    short = json.loads((tmp_path / "features/schema/feature_schema.json").read_text())
    joined = inputs[1].transactions.merge(inputs[1].labels, on="transaction_id")
    delays = pd.to_datetime(joined["label_available_at"]) - pd.to_datetime(joined["timestamp"])
    assert short["rows"]["late_labels"] == (delays > pd.Timedelta(days=2)).sum() > 0
    assert short["label_delay_days"] == 2 and short["gap_days"] == 2


def test_ids_with_commas_and_quotes_are_written_quoted(tmp_path):
    """Any non-empty string is a valid customer_id: the ids files must quote what needs it."""
    data = generate(3_000, seed=5)
    tx = data.transactions.assign(customer_id='C,"' + data.transactions["customer_id"])
    (tmp_path / "raw").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "raw" / "part.json").write_text(tx.to_json(orient="records", lines=True))
    data.labels.to_csv(tmp_path / "labels" / "labels.csv", index=False)
    result = run_job(tmp_path, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    ids = pd.read_csv(next((tmp_path / "out/features/test-ids").glob("*.csv")))
    assert len(ids) and ids["customer_id"].str.startswith('C,"').all()
    assert set(ids["customer_id"]) <= set(tx["customer_id"])


def test_too_little_mature_data_for_the_gaps_is_a_clear_error(inputs, tmp_path):
    result = run_job(inputs[0], tmp_path, None, "--as-of", "2026-09-20T00:00:00")
    assert result.returncode == 1
    assert "two gaps of 7 days need more" in result.stderr


def test_labels_not_yet_known_are_history_only(inputs, tmp_path):
    result = run_job(inputs[0], tmp_path, None, "--as-of", "2026-10-20T00:00:00")
    assert result.returncode == 0, result.stderr
    schema = json.loads((tmp_path / "features/schema/feature_schema.json").read_text())
    known = (pd.to_datetime(inputs[1].labels["label_available_at"]) <= pd.Timestamp("2026-10-20", tz="UTC")).sum()
    assert schema["rows"]["labelled"] == known < 8_000
    assert schema["rows"]["labels_not_yet_known"] == 8_000 - known
    assert periods_of(tmp_path)["maturing"] == pd.Timestamp("2026-10-13", tz="UTC")


def host_tree(root: Path, host: int, hosts: int, distribution: str) -> Path:
    config = root / f"algo-{host}" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": f"algo-{host}", "hosts": [f"algo-{i + 1}" for i in range(hosts)]}))
    raw = str(root.parent / "inputs-link" / "raw")
    (config / "processingjobconfig.json").write_text(json.dumps(
        {"ProcessingInputs": [{"S3Input": {"LocalPath": raw, "S3DataDistributionType": distribution}}]}
    ))
    return root / f"algo-{host}"


def test_three_hosts_write_exactly_the_single_host_rows(inputs, single, tmp_path):
    link = tmp_path / "inputs-link"
    link.symlink_to(inputs[0])
    for host in (1, 2, 3):
        opt_ml = host_tree(tmp_path / "cluster", host, 3, "FullyReplicated")
        result = run_job(link, tmp_path / "out", opt_ml)
        assert result.returncode == 0, result.stdout + result.stderr
    for name in ("train", "validation", "test"):
        union = read_split(tmp_path / "out", name)
        expected = read_split(single, name)
        assert len(list((tmp_path / "out/features" / name).glob("*.csv"))) == 3
        np.testing.assert_array_equal(np.unique(union, axis=0), np.unique(expected, axis=0))
        assert len(union) == len(expected)


def test_sharded_raw_input_over_several_hosts_is_refused(inputs, tmp_path):
    link = tmp_path / "inputs-link"
    link.symlink_to(inputs[0])
    opt_ml = host_tree(tmp_path / "cluster", 1, 2, "ShardedByS3Key")
    result = run_job(link, tmp_path / "out", opt_ml)
    assert result.returncode == 1
    assert "ShardedByS3Key" in result.stderr and "FullyReplicated" in result.stderr


def test_no_valid_records_is_a_clear_error(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "junk").write_bytes(b"not json\n")
    (tmp_path / "labels").mkdir()
    result = run_job(tmp_path, tmp_path / "out")
    assert result.returncode == 1
    assert "no valid transactions" in result.stderr


def test_a_record_missing_a_field_does_not_taint_the_others():
    """Regression: a gap in is_international turned the column to float and every row 'wrong'."""
    good = generate(50, seed=5).transactions.to_dict("records")
    lacking = {k: v for k, v in good[0].items() if k != "is_international"}
    lines = [json.dumps(lacking)] + [json.dumps(r) for r in good[1:]]
    landed = validation.validate(lines)
    assert len(landed.frame) == 49
    assert {k: len(v) for k, v in landed.rejected.items() if v} == {"missing_field": 1}


# The job's outputs on tests/data/feature_job (1,200 generated payments with every kind of bad
# record mixed in, gzip and plain objects): sha256 of each file with every number re-printed
# as "%.6g". The quarantine files are still those the json.loads + np.savetxt job of commit
# b65357b wrote (issue 11 only changed the reports: identical duplicates counted, every reason
# named). The feature files were re-recorded for issue 12, which changed what the job
# computes: terminal windows end 7 days (the data's label delay) before a payment instead of
# 14, only payments older than the delay are used, the sets are separated by two gaps, and
# validation-ids/ and test-ids/ name each row's card and whether it was known compromised.
# The schema's digest is of the file without the two keys issue 14 appended (the training
# set's scale_pos_weight and the pipeline's DataVersion), which are checked by value.
GOLDEN = {
    "features/baseline/baseline-algo-1.csv": "9894e625050df63d",
    "features/schema/feature_schema.json": "be107b51d85951b8",
    "features/test/part-algo-1.csv": "993be1b8f1342b45",
    "features/test-ids/part-algo-1.csv": "ad1eaade158aa9ce",
    "features/train/part-algo-1.csv": "be3ef06a037421a1",
    "features/validation/part-algo-1.csv": "deb744e6fc9a5740",
    "features/validation-ids/part-algo-1.csv": "b100514a0b21f670",
    "quarantine/bad_json.jsonl": "f345799b386c8d16",
    "quarantine/counts.json": "ddd801658ee263d9",
    "quarantine/missing_field.jsonl": "44ee029b00d8f154",
    "quarantine/negative_amount.jsonl": "a7899321889455b3",
    "quarantine/wrong_type.jsonl": "4c2dcb4301fd843b",
}
FIXTURE = Path(__file__).parent / "data" / "feature_job"


def six_digit_digest(path: Path) -> str:
    text = path.read_text()
    if path.suffix == ".csv":
        lines = []
        for line in text.splitlines():
            fields = []
            for value in line.split(","):
                try:
                    fields.append(f"{float(value):.6g}")
                except ValueError:
                    fields.append(value)
            lines.append(",".join(fields))
        text = "\n".join(lines)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_outputs_are_those_of_the_line_by_line_job_to_six_digits(tmp_path):
    result = run_job(FIXTURE, tmp_path, None, "--as-of", "2026-11-10T00:00:00")
    assert result.returncode == 0, result.stderr
    schema_path = tmp_path / "features/schema/feature_schema.json"
    schema = json.loads(schema_path.read_text())
    train = schema["splits"]["train"]
    assert schema.pop("training") == {"scale_pos_weight": f"{(train['rows'] - train['fraud']) / train['fraud']:.2f}"}
    assert schema.pop("data_version") is None  # not run by the pipeline
    schema_path.write_text(json.dumps(schema, indent=2))
    written = {str(p.relative_to(tmp_path)): six_digit_digest(p) for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert written == GOLDEN


def lines_of(records: list) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


EDGE_CASES = [
    ("valid", lambda r: r),
    ("valid", lambda r: {**r, "amount": 12}),  # an integer amount is a number
    ("valid", lambda r: {**r, "is_international": True}),
    ("valid", lambda r: {**r, "unknown_field": [1]}),
    ("valid", lambda r: {**r, "timestamp": "2026-10-02T10:00:00+02:00"}),  # other ISO 8601 forms
    ("bad_json", lambda r: json.dumps(r)[:30]),
    ("bad_json", lambda r: json.dumps(r) + json.dumps(r)),  # two records on one line
    ("bad_json", lambda r: "[1, 2]"),
    ("missing_field", lambda r: {k: v for k, v in r.items() if k != "customer_id"}),
    ("missing_field", lambda r: {**r, "amount": None}),
    ("wrong_type", lambda r: {**r, "amount": "12.50"}),
    ("wrong_type", lambda r: json.dumps(r).replace(f'"amount": {json.dumps(r["amount"])}', '"amount": NaN')),
    ("wrong_type", lambda r: {**r, "customer_id": 17}),
    ("wrong_type", lambda r: {**r, "terminal_id": ""}),
    ("wrong_type", lambda r: {**r, "is_international": 2}),
    ("wrong_type", lambda r: {**r, "timestamp": "yesterday"}),
    ("negative_amount", lambda r: {**r, "amount": -3.5}),
]


@pytest.mark.parametrize("expected,edit", EDGE_CASES)
def test_each_record_is_judged_the_same_alone_or_among_clean_ones(expected, edit):
    """Clean objects go through pyarrow, others line by line: the verdict must not depend on it."""
    rows = generate(20, seed=9).transactions.to_dict("records")
    edited = edit(dict(rows[3], transaction_id="TXN-EDITED"))
    for lines in (lines_of([edited]), lines_of(rows[:3] + [edited] + rows[4:])):
        landed = validation.validate(lines)
        verdicts = {reason: len(found) for reason, found in landed.rejected.items() if found}
        assert verdicts == ({} if expected == "valid" else {expected: 1})
        if expected != "valid":
            assert landed.rejected[expected] == [lines_of([edited])[0]]


def test_blank_lines_and_a_repeated_record_are_handled_in_the_fast_path(tmp_path):
    rows = generate(30, seed=9).transactions.to_dict("records")
    body = "\n\n".join(json.dumps(r) for r in rows + [rows[5]]) + "\n  \n"
    (tmp_path / "part").write_bytes(gzip.compress(body.encode()))
    landed = validation.read_transactions(tmp_path)
    assert len(landed.frame) == 30 and landed.lines == 31
    assert landed.duplicates == 1 and not any(landed.rejected.values())
    assert landed.frame["timestamp"].is_monotonic_increasing


def test_numbers_are_written_as_printf_rounds_them_to_six_digits():
    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.random(2000) * 10.0 ** rng.integers(-8, 9, 2000),
        np.round(rng.random(500) * 1e4, 4) + 0.00005,  # ties at the 6th digit
        [0.0, -0.0, 1.0, 123456.5, 1234567.0, -42.125, 1e-300],
    ])
    expected = np.array([float(f"{v:.6g}") for v in values])
    np.testing.assert_array_equal(feature_job.significant_digits(values), expected)


def test_ids_timestamps_are_written_as_pandas_writes_them():
    """The ids files' timestamps: whole seconds by arrow's cast, others by pandas itself."""
    for times in (["2026-10-02T08:00:00Z", "2026-11-30T23:59:59Z"], ["2026-10-02T08:00:00.250Z", "2026-10-03T00:00:00Z"]):
        timestamps = pd.Series(pd.to_datetime(times, utc=True, format="ISO8601"))
        assert feature_job.pandas_text(timestamps).to_pylist() == timestamps.astype(str).tolist()


def test_no_label_known_yet_gives_empty_sets_not_a_crash(tmp_path):
    """Payments whose labels have not arrived: every set is empty, the job still succeeds (the
    one hash lookup that checks and joins the labels once indexed into no labels at all)."""
    (tmp_path / "labels").mkdir()
    (tmp_path / "raw").symlink_to(FIXTURE / "raw")
    result = run_job(tmp_path, tmp_path / "out", None, "--as-of", "2026-11-10T00:00:00")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == {"train": 0, "validation": 0, "test": 0}
