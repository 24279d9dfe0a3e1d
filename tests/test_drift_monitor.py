"""The drift monitor's contract: Model Monitor's report schemas, no false alarm on clean data,
every injected drift kind detected and named, and a clear outcome when there is no data."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import jsonschema
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from labkit import drift
from labkit.transactions import generate
from processing import drift_monitor as dm
from processing.features import FEATURE_COLUMNS, LABEL_DELAY_DAYS, build_features

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
CHECKS = ["data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check", "extra_column_check", "categorical_values_check"]

# The documented schemas (SageMaker Developer Guide, "Schema for Statistics" / "Schema for
# Constraints" / "Schema for Violations"), the parts the kit writes.
COMMON = {"type": "object", "required": ["num_present", "num_missing"], "properties": {"num_present": {"type": "integer"}, "num_missing": {"type": "integer"}}}
STATISTICS_SCHEMA = {
    "type": "object",
    "required": ["version", "dataset", "features"],
    "properties": {
        "version": {"type": "number"},
        "dataset": {"type": "object", "required": ["item_count"], "properties": {"item_count": {"type": "integer"}}},
        "features": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "inferred_type"],
            "properties": {
                "name": {"type": "string"},
                "inferred_type": {"enum": ["Integral", "Fractional", "String", "Unknown"]},
                "numerical_statistics": {"type": "object", "required": ["common", "mean", "sum", "std_dev", "min", "max", "distribution"], "properties": {
                    "common": COMMON,
                    "distribution": {"type": "object", "required": ["kll"], "properties": {"kll": {"type": "object", "required": ["buckets", "sketch"], "properties": {
                        "buckets": {"type": "array", "items": {"type": "object", "required": ["lower_bound", "upper_bound", "count"]}},
                        "sketch": {"type": "object", "required": ["parameters", "data"], "properties": {"parameters": {"type": "object", "required": ["c", "k"]}, "data": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}},
                    }}}},
                }},
                "string_statistics": {"type": "object", "required": ["common", "distinct_count", "distribution"], "properties": {
                    "common": COMMON,
                    "distribution": {"type": "object", "required": ["categorical"], "properties": {"categorical": {"type": "object", "required": ["buckets"], "properties": {
                        "buckets": {"type": "array", "items": {"type": "object", "required": ["value", "count"]}}}}}},
                }},
            },
            "oneOf": [{"required": ["numerical_statistics"]}, {"required": ["string_statistics"]}],
        }},
    },
}
CONSTRAINTS_SCHEMA = {
    "type": "object",
    "required": ["version", "features", "monitoring_config"],
    "properties": {
        "features": {"type": "array", "items": {"type": "object", "required": ["name", "inferred_type", "completeness"], "properties": {
            "completeness": {"type": "number", "minimum": 0, "maximum": 1},
            "num_constraints": {"type": "object", "required": ["is_non_negative"]},
            "string_constraints": {"type": "object", "required": ["domains"]},
            "monitoringConfigOverrides": {"type": "object"},
        }}},
        "monitoring_config": {"type": "object", "required": ["evaluate_constraints", "emit_metrics", "datatype_check_threshold", "domain_content_threshold", "distribution_constraints"], "properties": {
            "distribution_constraints": {"type": "object", "required": ["perform_comparison", "comparison_threshold", "comparison_method", "categorical_comparison_threshold", "categorical_drift_method"]},
        }},
    },
}
VIOLATIONS_SCHEMA = {
    "type": "object",
    "required": ["violations"],
    "properties": {"violations": {"type": "array", "items": {
        "type": "object",
        "required": ["feature_name", "constraint_check_type", "description"],
        "additionalProperties": False,
        "properties": {"feature_name": {"type": "string"}, "constraint_check_type": {"enum": CHECKS}, "description": {"type": "string"}},
    }}},
}


@pytest.fixture(scope="module")
def lab_data():
    """Transactions, labels, training-period features and a baseline built from them."""
    data = generate(12_000, seed=5)
    history = data.transactions.assign(timestamp=pd.to_datetime(data.transactions["timestamp"], utc=True))
    labels = data.labels["is_fraud"]
    features = build_features(history, labels)[FEATURE_COLUMNS]
    train = history["timestamp"] < history["timestamp"].quantile(0.7)
    reference = features[train].reset_index(drop=True)
    statistics, constraints, groups = dm.suggest_baseline(reference, 0.1, {f: "clock" for f in ("hour_of_day", "is_weekend", "is_night")})
    return {"history": history, "labels": labels, "features": features, "train_index": history.index[train],
            "reference": reference, "statistics": statistics, "constraints": constraints, "groups": groups}


@pytest.fixture()
def baseline_dir(lab_data, tmp_path):
    (tmp_path / "constraints.json").write_text(json.dumps(lab_data["constraints"]))
    lab_data["reference"].to_csv(tmp_path / "reference.csv", index=False)
    return tmp_path


def capture_lines(rows: list[str], content_type: str = "text/csv", at: datetime = T0 + timedelta(minutes=5), per_request: int = 100) -> list[str]:
    """Rows as SageMaker data-capture JSONL, `per_request` rows per captured request."""
    lines = []
    for start in range(0, len(rows), per_request):
        body = "\n".join(rows[start : start + per_request]) if content_type == "text/csv" else json.dumps({"instances": rows[start : start + per_request]})
        lines.append(json.dumps({
            "captureData": {"endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": body, "encoding": "CSV" if content_type == "text/csv" else "JSON"}},
            "eventMetadata": {"eventId": str(start), "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"},
            "eventVersion": "0",
        }))
    return lines


def csv_rows(values: np.ndarray) -> list[str]:
    return [",".join("" if np.isnan(v) else f"{v:.6g}" for v in row) for row in values]


def monitor(baseline_dir, lines) -> dict:
    return dm.run_monitor(baseline_dir, lines, T0, T0 + timedelta(hours=1))


def clean_sample(lab_data, seed: int, size: int = 1000) -> np.ndarray:
    rows = np.random.default_rng(seed).choice(lab_data["train_index"], size=size, replace=False)
    return lab_data["features"].loc[rows].to_numpy(float)


def test_baseline_and_reports_follow_model_monitors_schemas(lab_data, baseline_dir):
    jsonschema.validate(lab_data["statistics"], STATISTICS_SCHEMA)
    jsonschema.validate(lab_data["constraints"], CONSTRAINTS_SCHEMA)
    report = monitor(baseline_dir, capture_lines(csv_rows(clean_sample(lab_data, 1))))
    jsonschema.validate(report["statistics"], STATISTICS_SCHEMA)
    jsonschema.validate(report["constraint_violations"], VIOLATIONS_SCHEMA)
    drifted = monitor(baseline_dir, capture_lines(csv_rows(drift.features_for(lab_data["history"], lab_data["labels"], lab_data["train_index"][:800], list(drift.KINDS), LABEL_DELAY_DAYS))))
    jsonschema.validate(drifted["constraint_violations"], VIOLATIONS_SCHEMA)
    assert drifted["constraint_violations"]["violations"]


def test_one_hot_columns_are_read_back_as_one_categorical_feature(lab_data):
    assert lab_data["groups"] == {"category": [c for c in FEATURE_COLUMNS if c.startswith("category_")]}
    category = next(f for f in lab_data["constraints"]["features"] if f["name"] == "category")
    assert category["inferred_type"] == "String" and "grocery" in category["string_constraints"]["domains"]
    types = {f["name"]: f["inferred_type"] for f in lab_data["constraints"]["features"]}
    assert types["is_weekend"] == "Integral" and types["log_amount"] == "Fractional"


def test_kll_sketch_stands_for_every_value(lab_data):
    feature = next(f for f in lab_data["statistics"]["features"] if f["name"] == "log_amount")
    sketch = feature["numerical_statistics"]["distribution"]["kll"]["sketch"]
    weight = sum(len(level) * 2**i for i, level in enumerate(sketch["data"]))
    assert abs(weight - feature["numerical_statistics"]["common"]["num_present"]) <= 2 ** (len(sketch["data"]) - 1)


def test_ks_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=3000), rng.normal(0.2, 1.1, size=700)
    assert dm.ks_distance(a, b) == pytest.approx(scipy_stats.ks_2samp(a, b).statistic, abs=1e-12)
    discrete_a, discrete_b = rng.integers(0, 5, 1000).astype(float), rng.integers(0, 6, 400).astype(float)
    assert dm.ks_distance(discrete_a, discrete_b) == pytest.approx(scipy_stats.ks_2samp(discrete_a, discrete_b).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_clean_windows_raise_no_violation(lab_data, baseline_dir, seed):
    report = monitor(baseline_dir, capture_lines(csv_rows(clean_sample(lab_data, 100 + seed))))
    assert report["result"]["outcome"] == "Completed"
    assert report["constraint_violations"]["violations"] == []


@pytest.mark.parametrize("kind", list(drift.KINDS))
def test_each_injected_drift_kind_is_detected_and_named(lab_data, baseline_dir, kind):
    rows = pd.Index(np.random.default_rng(3).choice(lab_data["train_index"], size=1000, replace=False))
    report = monitor(baseline_dir, capture_lines(csv_rows(drift.features_for(lab_data["history"], lab_data["labels"], rows, [kind], LABEL_DELAY_DAYS))))
    found = {(v["feature_name"], v["constraint_check_type"]) for v in report["constraint_violations"]["violations"]}
    assert drift.EXPECTED[kind] in found
    assert report["result"]["outcome"] == "CompletedWithViolations"
    if kind == "new_category":  # named in words (regression: "not in it: (none) (1000)")
        (description,) = [v["description"] for v in report["constraint_violations"]["violations"] if v["constraint_check_type"] == "categorical_values_check"]
        assert "not in it: a category unseen in training (every one-hot column 0) (1000)" in description


def test_malformed_columns_are_named(lab_data, baseline_dir):
    values = clean_sample(lab_data, 9, 600)
    text = csv_rows(values)
    wrong_type = [row.replace(row.split(",")[0], "abc", 1) if i % 2 else row for i, row in enumerate(text)]
    short = [",".join(row.split(",")[:-1]) for row in text]
    long = [row + ",7" for row in text]
    checks = {}
    for name, rows in (("type", wrong_type), ("short", short), ("long", long)):
        report = monitor(baseline_dir, capture_lines(rows))
        checks[name] = {(v["feature_name"], v["constraint_check_type"]) for v in report["constraint_violations"]["violations"]}
    assert ("log_amount", "data_type_check") in checks["type"]
    assert (FEATURE_COLUMNS[-1], "missing_column_check") in checks["short"]
    assert (f"_c{len(FEATURE_COLUMNS)}", "extra_column_check") in checks["long"]


def test_json_requests_are_read_like_csv(lab_data, baseline_dir):
    values = clean_sample(lab_data, 11, 300)
    as_json = monitor(baseline_dir, capture_lines([list(map(float, row)) for row in values], "application/json"))
    as_csv = monitor(baseline_dir, capture_lines(csv_rows(values)))
    assert as_json["result"]["rows"] == as_csv["result"]["rows"] == 300
    assert as_json["distances"]["log_amount"] == pytest.approx(as_csv["distances"]["log_amount"], abs=1e-3)


def test_an_empty_window_is_a_clear_no_data_outcome(baseline_dir, lab_data):
    outside = capture_lines(csv_rows(clean_sample(lab_data, 2, 100)), at=T0 - timedelta(minutes=1))
    report = monitor(baseline_dir, outside)
    assert report["result"]["outcome"] == "NoData"
    assert "no captured requests" in report["result"]["message"] and "data capture" in report["result"]["message"]
    metrics = dm.metric_data(report, [{"Name": "Endpoint", "Value": "e"}], T0)
    assert [(m["MetricName"], m["Value"]) for m in metrics] == [("captured_rows", 0.0)]  # no violation datapoint: the alarm keeps its state


def test_metrics_are_one_per_feature_plus_counts(lab_data, baseline_dir):
    report = monitor(baseline_dir, capture_lines(csv_rows(clean_sample(lab_data, 4, 500))))
    names = {m["MetricName"] for m in dm.metric_data(report, [], T0)}
    assert {"captured_rows", "constraint_violations", "feature_baseline_drift_log_amount", "feature_baseline_drift_category"} <= names
    assert len(names) == len(FEATURE_COLUMNS) + 1 + 2


def test_baseline_mode_writes_the_files_and_model_monitor_names(lab_data, tmp_path):
    (tmp_path / "in").mkdir()
    lab_data["reference"].to_csv(tmp_path / "in" / "baseline-algo-1.csv", index=False)
    assert dm.main(["--mode", "baseline", "--reference", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--uncompared", "hour_of_day"]) == 0
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"statistics.json", "constraints.json", "reference.csv", "model-monitor"}
    positional = json.loads((out / "model-monitor" / "constraints.json").read_text())
    assert [f["name"] for f in positional["features"]] == [f"_c{i}" for i in range(len(FEATURE_COLUMNS))]
    hour = next(f for f in json.loads((out / "constraints.json").read_text())["features"] if f["name"] == "hour_of_day")
    assert hour["monitoringConfigOverrides"]["perform_comparison"] == "Disabled"


class LandedCapture:
    """S3 as the monitor sees it at one moment: only capture files that have landed by then."""

    def __init__(self) -> None:
        self.files: list[tuple[datetime, str, str]] = []  # (landed at, key, body)
        self.now = T0

    def land(self, at: datetime, key: str, lines: list[str]) -> None:
        self.files.append((at, key, "\n".join(lines) + "\n"))

    def get_paginator(self, _):
        visible = [(k, b) for at, k, b in self.files if at <= self.now]
        return type("Pages", (), {"paginate": lambda _, Bucket, Prefix: [{"Contents": [{"Key": k} for k, _ in visible if k.startswith(Prefix)]}]})()

    def get_object(self, Bucket, Key):
        body = next(b for _, k, b in self.files if k == Key)
        return {"Body": type("Body", (), {"read": lambda _: body.encode()})()}


@pytest.mark.parametrize("hours, first_run_minute", [(1, 0), (1, 23), (3, 47)])
def test_scheduled_windows_follow_one_another_and_wait_for_capture_to_land(hours, first_run_minute):
    runs = [T0 + timedelta(hours=2, minutes=first_run_minute) + timedelta(hours=hours * i) for i in range(30)]
    windows = [dm.scheduled_window(run, hours, settle_minutes=15) for run in runs]
    assert all(end - start == timedelta(hours=hours) for start, end in windows)
    assert all(previous[1] == current[0] for previous, current in zip(windows, windows[1:]))  # no gap, no overlap
    assert all(run - end >= timedelta(minutes=15) for run, (_, end) in zip(runs, windows))


def test_a_request_whose_capture_file_lands_after_the_run_is_counted_once_by_the_next_run(lab_data, baseline_dir):
    """A request at 10:19:50 lands in S3 at 10:22, after the run scheduled at 10:20."""
    s3, prefix, names = LandedCapture(), "capture/ep/AllTraffic", list(lab_data["reference"].columns)
    rows = csv_rows(clean_sample(lab_data, 9, 3))
    hour = T0.replace(minute=0)
    for offset, landed, row in ((timedelta(minutes=30), timedelta(minutes=33), rows[0]),  # an ordinary request
                                (timedelta(hours=1, minutes=19, seconds=50), timedelta(hours=1, minutes=22), rows[1]),  # late file
                                (timedelta(minutes=59, seconds=59), timedelta(hours=1, minutes=2), rows[2])):  # foldered in the next hour
        at = hour + offset
        written = hour + landed
        s3.land(written, f"{prefix}/{written:%Y/%m/%d/%H}/{written:%M-%S}-x.jsonl", capture_lines([row], at=at))
    counted = 0
    for run in (hour + timedelta(hours=1, minutes=20), hour + timedelta(hours=2, minutes=20), hour + timedelta(hours=3, minutes=20)):
        s3.now = run
        start, end = dm.scheduled_window(run, 1, settle_minutes=15)
        frame, _, _ = dm.parse_capture(dm.read_s3_capture(s3, "bucket", prefix, start, end), start, end, names)
        counted += len(frame)
    assert counted == 3
