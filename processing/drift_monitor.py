"""Data-quality drift monitor: SageMaker Model Monitor's reports, computed by the kit itself.

Model Monitor is closed to new customers, so a fresh account runs this instead, as a
Processing job on a schedule. It writes the files Model Monitor writes, in its schemas
(statistics.json, constraints.json, constraint_violations.json), so what a learner reads
here is what they would read there. One self-contained file: the schedule ships it as a
single CDK asset.

  --mode baseline  reference features (CSV with header: the features step's baseline/)
                   -> statistics.json, constraints.json, reference.csv (a sample of at most
                   REFERENCE_ROWS rows the drift distances are measured against), and
                   model-monitor/ (the same baseline named _c0.._cN, as Model Monitor names
                   the columns of captured CSV).
  --mode monitor   baseline/ + the endpoint's captured requests in [window start, end)
                   -> <yyyy>/<mm>/<dd>/<hh>/<job>/statistics.json, constraint_violations.json,
                   result.json, metrics.json; metrics published to CloudWatch.

Checks (Model Monitor's names): missing_column_check, extra_column_check, data_type_check,
completeness_check, baseline_drift_check, categorical_values_check.

Drift statistic: the Kolmogorov-Smirnov distance (largest gap between the two empirical
CDFs) for numeric features and the L-infinity distance between value frequencies for
categorical ones -- the two distances Model Monitor itself reports. They are computed here
with numpy (a few lines, tested against scipy) rather than with Evidently: the job runs in
the built-in XGBoost image inside a VPC without internet, where Evidently and its ~30
dependencies cannot be installed, and adding an ECR image only for it would cost more than
the lab. "Robust" comparison, as in Model Monitor: a distance counts as drift only when it
exceeds the threshold AND the KS critical value at alpha=0.001 for the two sample sizes, so
a quiet hour with a few hundred requests does not raise false alarms.

One-hot groups (columns `<group>_<value>` holding a single 1 per baseline row) are also
read back as one categorical feature `<group>`, so an unseen category -- all zeros -- is
named as such instead of showing up as a small shift in seven columns.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

OPT_ML = Path(os.environ.get("FRAUDLAB_OPT_ML", "/opt/ml"))
REFERENCE_ROWS = 100_000
KS_CRITICAL_C = 1.949  # c(alpha) for alpha = 0.001: D_crit = c * sqrt((n + m) / (n * m))
UNSEEN = "(none)"  # the value of a one-hot group whose columns are all 0


def _category_name(value: str) -> str:
    """How a category reads in a report: all one-hot columns 0 is a category training never saw."""
    return "a category unseen in training (every one-hot column 0)" if value == UNSEEN else value
METRIC_PREFIX = "feature_baseline_drift_"
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}


# --- statistics and constraints ----------------------------------------------------------


def one_hot_groups(reference: pd.DataFrame) -> dict[str, list[str]]:
    """{group: columns} for column families `<group>_<value>` with exactly one 1 per row."""
    families: dict[str, list[str]] = {}
    for column in reference.columns:
        if "_" in column:
            families.setdefault(column.rsplit("_", 1)[0], []).append(column)
    groups = {}
    for group, columns in families.items():
        values = reference[columns].to_numpy(float)
        if len(columns) > 1 and np.isin(values, (0.0, 1.0)).all() and (values.sum(axis=1) == 1).all():
            groups[group] = columns
    return groups


def categorical_values(frame: pd.DataFrame, columns: list[str], group: str) -> pd.Series:
    """The category each row's one-hot columns name; UNSEEN when none is 1."""
    values = frame[columns].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy(float)
    names = np.array([c.removeprefix(group + "_") for c in columns], dtype=object)
    labels = np.where(values.max(axis=1) >= 1, names[values.argmax(axis=1)], UNSEEN)
    return pd.Series(labels, index=frame.index, dtype=object)


def infer_type(values: pd.Series) -> str:
    numbers = pd.to_numeric(values.dropna(), errors="coerce")
    if numbers.isna().any() or numbers.empty:
        return "String"
    return "Integral" if (numbers == numbers.round()).all() else "Fractional"


def feature_statistics(name: str, values: pd.Series, inferred_type: str) -> dict[str, Any]:
    present = values.dropna()
    common = {"num_present": int(len(present)), "num_missing": int(len(values) - len(present))}
    if inferred_type == "String":
        counts = Counter(present.astype(str))
        return {
            "name": name,
            "inferred_type": "String",
            "string_statistics": {
                "common": common,
                "distinct_count": len(counts),
                "distribution": {"categorical": {"buckets": [{"value": v, "count": c} for v, c in sorted(counts.items())]}},
            },
        }
    numbers = pd.to_numeric(present, errors="coerce").dropna().to_numpy(float)
    stats: dict[str, Any] = {"common": common}
    if len(numbers):
        stats.update(
            mean=float(numbers.mean()), sum=float(numbers.sum()), std_dev=float(numbers.std()),
            min=float(numbers.min()), max=float(numbers.max()),
            distribution={"kll": {"buckets": _buckets(numbers), "sketch": _kll_sketch(numbers)}},
        )
    return {"name": name, "inferred_type": inferred_type, "numerical_statistics": stats}


def _buckets(numbers: np.ndarray, count: int = 10) -> list[dict[str, float]]:
    low, high = float(numbers.min()), float(numbers.max())
    edges = np.linspace(low, high, count + 1) if high > low else np.array([low, high])
    counts, _ = np.histogram(numbers, bins=edges)
    return [{"lower_bound": float(a), "upper_bound": float(b), "count": float(c)} for a, b, c in zip(edges[:-1], edges[1:], counts)]


def _kll_sketch(numbers: np.ndarray, k: int = 2048) -> dict[str, Any]:
    """A KLL sketch compacted to one level: every 2^L-th sorted value, each standing for 2^L items."""
    level = max(0, math.ceil(math.log2(len(numbers) / k))) if len(numbers) > k else 0
    kept = np.sort(numbers)[(2**level) // 2 :: 2**level]
    return {"parameters": {"c": 0.64, "k": float(k)}, "data": [[] for _ in range(level)] + [[float(v) for v in kept]]}


def statistics(frame: pd.DataFrame, types: dict[str, str]) -> dict[str, Any]:
    return {
        "version": 0.0,
        "dataset": {"item_count": int(len(frame))},
        "features": [feature_statistics(name, frame[name], types[name]) for name in types if name in frame],
    }


def with_categories(frame: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """The frame plus one categorical column per one-hot group (if all its columns are there)."""
    extra = {g: categorical_values(frame, cols, g) for g, cols in groups.items() if set(cols) <= set(frame.columns)}
    return frame.assign(**extra) if extra else frame


def suggest_baseline(
    reference: pd.DataFrame, comparison_threshold: float, uncompared: dict[str, str] | None = None
) -> tuple[dict, dict, dict[str, list[str]]]:
    """(statistics, constraints, one-hot groups) of the reference data.

    `uncompared`: {feature: reason} whose distribution is not compared (still type- and
    completeness-checked), e.g. hour of day: an hourly window holds one hour by design.
    """
    uncompared = uncompared or {}
    groups = one_hot_groups(reference)
    frame = with_categories(reference, groups)
    types = {name: infer_type(frame[name]) for name in reference.columns}
    types.update({group: "String" for group in groups})
    stats = statistics(frame, types)
    features = []
    for name, inferred in types.items():
        values = frame[name]
        feature: dict[str, Any] = {"name": name, "inferred_type": inferred, "completeness": float(values.notna().mean())}
        if inferred == "String":
            feature["string_constraints"] = {"domains": sorted(values.dropna().astype(str).unique())}
            if name in groups:
                feature["one_hot_columns"] = groups[name]
        else:
            feature["num_constraints"] = {"is_non_negative": bool((pd.to_numeric(values, errors="coerce") >= 0).all())}
        if name in uncompared:
            feature["monitoringConfigOverrides"] = {"perform_comparison": "Disabled", "reason": uncompared[name]}
        features.append(feature)
    config = json.loads(json.dumps(MONITORING_CONFIG))
    config["distribution_constraints"]["comparison_threshold"] = comparison_threshold
    config["distribution_constraints"]["categorical_comparison_threshold"] = comparison_threshold
    return stats, {"version": 0.0, "features": features, "monitoring_config": config}, groups


def positional(document: dict, names: list[str]) -> dict:
    """A baseline document with features renamed _c0.._cN (Model Monitor's names for CSV
    columns); features not in `names` (the kit's one-hot groups) are left out."""
    index = {name: f"_c{i}" for i, name in enumerate(names)}
    renamed = json.loads(json.dumps(document))
    renamed["features"] = [dict(f, name=index[f["name"]]) for f in renamed["features"] if f["name"] in index]
    for feature in renamed["features"]:
        feature.pop("one_hot_columns", None)
    return renamed


# --- drift distances ---------------------------------------------------------------------


def ks_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the two empirical CDFs (the two-sample KS statistic)."""
    reference, current = np.sort(reference), np.sort(current)
    points = np.concatenate([reference, current])
    gap = np.searchsorted(reference, points, side="right") / len(reference) - np.searchsorted(current, points, side="right") / len(current)
    return float(np.abs(gap).max())


def l_infinity(reference: pd.Series, current: pd.Series) -> float:
    """Largest difference between the two samples' shares of any one value."""
    p, q = reference.value_counts(normalize=True), current.value_counts(normalize=True)
    return float(p.sub(q, fill_value=0).abs().max())


def ks_critical(n: int, m: int) -> float:
    return KS_CRITICAL_C * math.sqrt((n + m) / (n * m))


# --- checks ------------------------------------------------------------------------------


def violation(feature: str, check: str, description: str) -> dict[str, str]:
    return {"feature_name": feature, "constraint_check_type": check, "description": description}


def constraint_groups(constraints: dict) -> dict[str, list[str]]:
    """The one-hot groups the baseline read back as categorical features."""
    return {f["name"]: f["one_hot_columns"] for f in constraints["features"] if "one_hot_columns" in f}


def check(current: pd.DataFrame, extra_columns: list[str], constraints: dict, reference: pd.DataFrame) -> tuple[list[dict], dict[str, float]]:
    """(violations, drift distance per feature) of a window against the baseline; both
    frames already carry the categorical columns of the one-hot groups (with_categories)."""
    config = constraints["monitoring_config"]
    distribution = config["distribution_constraints"]
    violations = [
        violation(name, "extra_column_check", f"column {name} is in the data but not in the baseline constraints")
        for name in extra_columns
    ]
    distances: dict[str, float] = {}
    groups = constraint_groups(constraints)
    for feature in constraints["features"]:
        name, inferred = feature["name"], feature["inferred_type"]
        if name not in current:
            if name not in groups:
                violations.append(violation(name, "missing_column_check", f"baseline column {name} is not in the data"))
            continue
        values = current[name]
        present = values.dropna()
        completeness = len(present) / max(len(values), 1)
        if completeness < feature["completeness"]:
            violations.append(violation(
                name, "completeness_check",
                f"Data completeness {completeness:.4f} is below the baseline's {feature['completeness']:.4f}: "
                f"{len(values) - len(present)} of {len(values)} values missing",
            ))
        if present.empty:
            continue
        if inferred == "String":
            domain = set(feature["string_constraints"]["domains"])
            unseen = present[~present.astype(str).isin(domain)]
            in_domain = 1 - len(unseen) / len(present)
            if in_domain < config["domain_content_threshold"]:
                shown = ", ".join(f"{_category_name(v)} ({c})" for v, c in Counter(unseen.astype(str)).most_common(3))
                violations.append(violation(
                    name, "categorical_values_check",
                    f"{in_domain:.2%} of values are in the baseline domain (threshold {config['domain_content_threshold']:.0%}); not in it: {shown}",
                ))
            distance = l_infinity(reference[name].astype(str), present.astype(str))
            threshold = distribution["categorical_comparison_threshold"]
            critical = 0.0
        else:
            numbers = pd.to_numeric(present, errors="coerce")
            conforming = numbers.notna() & ((numbers == numbers.round()) if inferred == "Integral" else True)
            share = float(conforming.mean())
            if share < config["datatype_check_threshold"]:
                bad = present[~conforming].astype(str).head(3).tolist()
                violations.append(violation(
                    name, "data_type_check",
                    f"{share:.2%} of values are {inferred} (threshold {config['datatype_check_threshold']:.0%}); e.g. {bad}",
                ))
            numbers = numbers.dropna().to_numpy(float)
            if not len(numbers):
                continue
            baseline_numbers = pd.to_numeric(reference[name], errors="coerce").dropna().to_numpy(float)
            distance = ks_distance(baseline_numbers, numbers)
            threshold = distribution["comparison_threshold"]
            critical = ks_critical(len(baseline_numbers), len(numbers)) if distribution["comparison_method"] == "Robust" else 0.0
        distances[name] = distance
        overrides = feature.get("monitoringConfigOverrides", {})
        threshold = overrides.get("comparison_threshold", threshold)
        compare = overrides.get("perform_comparison", distribution["perform_comparison"]) == "Enabled"
        if compare and distance > max(threshold, critical):
            method = "L-infinity" if inferred == "String" else "KS"
            violations.append(violation(
                name, "baseline_drift_check",
                f"Baseline drift distance {distance:.4f} ({method}) exceeds threshold {threshold}"
                + (f" and the sample-size critical value {critical:.4f}" if critical else ""),
            ))
    return violations, distances


# --- captured data -----------------------------------------------------------------------


def parse_capture(lines: Iterable[str], start: datetime, end: datetime, names: list[str]) -> tuple[pd.DataFrame, list[str], int]:
    """(rows as a frame of raw values, extra column names, captured requests) in [start, end)."""
    rows: list[dict[str, Any]] = []
    requests = 0
    width = len(names)
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        when = _parse_time(event["eventMetadata"]["inferenceTime"])
        if not start <= when < end:
            continue
        requests += 1
        captured = event["captureData"]["endpointInput"]
        data = captured["data"]
        if captured.get("encoding") == "BASE64":
            data = base64.b64decode(data).decode("utf-8", errors="replace")
        content_type = captured.get("observedContentType", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            instances = json.loads(data).get("instances", [])
            for instance in instances:
                if isinstance(instance, dict):
                    rows.append(dict(instance))
                else:
                    rows.append(_positional_row(instance, names, width))
        else:
            for text in data.splitlines():
                if text.strip():
                    rows.append(_positional_row([v.strip() or None for v in text.split(",")], names, width))
    frame = pd.DataFrame(rows, dtype=object)
    extra = [c for c in frame.columns if c not in names]
    return frame[[c for c in frame.columns if c in names]], extra, requests


def _positional_row(values: list, names: list[str], width: int) -> dict[str, Any]:
    return {(names[i] if i < width else f"_c{i}"): v for i, v in enumerate(values)}


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def scheduled_window(scheduled: datetime, hours: float, settle_minutes: float) -> tuple[datetime, datetime]:
    """[start, end) of the run scheduled at `scheduled`: whole hours that ended at least
    `settle_minutes` before it.

    Capture files land in S3 minutes after their requests, so a window ending at the
    scheduled time would miss its last requests, and the next window (starting there) would
    never see them. Windows snap to the hour: runs `hours` apart give windows that follow one
    another exactly, whatever minute the schedule fires at, so each request is counted once."""
    end = (scheduled - timedelta(minutes=settle_minutes)).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=hours), end


def hour_prefixes(prefix: str, start: datetime, end: datetime) -> list[str]:
    """The capture folders (…/yyyy/mm/dd/hh/) that can hold requests in [start, end).

    One hour past `end` too: a file is foldered by when it was written, so requests just
    before `end` can sit in the next hour's folder (parse_capture keeps only the window's)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour <= end:
        prefixes.append(f"{prefix.rstrip('/')}/{hour:%Y/%m/%d/%H}/")
        hour += timedelta(hours=1)
    return prefixes


def read_s3_capture(s3, bucket: str, prefix: str, start: datetime, end: datetime) -> Iterable[str]:
    # Reads only the window's hours: each run costs the same however long capture has run.
    paginator = s3.get_paginator("list_objects_v2")
    for folder in hour_prefixes(prefix, start, end):
        for page in paginator.paginate(Bucket=bucket, Prefix=folder):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                yield from body.decode("utf-8").splitlines()


# --- the two modes -----------------------------------------------------------------------


def read_reference(directory: Path) -> pd.DataFrame:
    files = sorted(directory.rglob("*.csv"))
    if not files:
        raise SystemExit(f"no CSV files under {directory}: run the features step first")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def run_baseline(reference_dir: Path, output: Path, comparison_threshold: float, uncompared: dict[str, str]) -> dict:
    reference = read_reference(reference_dir)
    stats, constraints, groups = suggest_baseline(reference, comparison_threshold, uncompared)
    output.mkdir(parents=True, exist_ok=True)
    _write(output / "statistics.json", stats)
    _write(output / "constraints.json", constraints)
    sample = reference.sample(n=min(len(reference), REFERENCE_ROWS), random_state=0).sort_index()
    sample.to_csv(output / "reference.csv", index=False)
    names = list(reference.columns)
    _write(output / "model-monitor/statistics.json", positional(stats, names))
    _write(output / "model-monitor/constraints.json", positional(constraints, names))
    return {"rows": len(reference), "reference_rows": len(sample), "features": len(names), "categorical": sorted(groups)}


def run_monitor(baseline_dir: Path, lines: Iterable[str], start: datetime, end: datetime) -> dict:
    """The whole report of one window: statistics, violations, distances, outcome."""
    constraints = json.loads((baseline_dir / "constraints.json").read_text())
    reference = pd.read_csv(baseline_dir / "reference.csv")
    names = list(reference.columns)
    current, extra, requests = parse_capture(lines, start, end, names)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    if current.empty and not extra:
        return {
            "result": {"outcome": "NoData", "window": window, "captured_requests": requests, "rows": 0,
                       "message": f"no captured requests between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC: "
                                  "is the endpoint receiving traffic, and is data capture enabled?"},
        }
    groups = constraint_groups(constraints)
    current = with_categories(current, groups)
    violations, distances = check(current, extra, constraints, with_categories(reference, groups))
    types = {f["name"]: f["inferred_type"] for f in constraints["features"]}
    outcome = "CompletedWithViolations" if violations else "Completed"
    return {
        "statistics": statistics(current, types),
        "constraint_violations": {"violations": violations},
        "distances": distances,
        "result": {"outcome": outcome, "window": window, "captured_requests": requests, "rows": int(len(current)),
                   "violations": len(violations), "features_checked": len(distances)},
    }


def metric_data(report: dict, dimensions: list[dict[str, str]], timestamp: datetime) -> list[dict]:
    """CloudWatch datapoints: rows seen, violations, and one drift distance per feature."""
    result = report["result"]
    data = [{"MetricName": "captured_rows", "Value": float(result["rows"]), "Unit": "Count"}]
    if result["outcome"] != "NoData":
        data.append({"MetricName": "constraint_violations", "Value": float(result["violations"]), "Unit": "Count"})
        data += [{"MetricName": METRIC_PREFIX + name, "Value": value, "Unit": "None"} for name, value in report["distances"].items()]
    return [dict(d, Dimensions=dimensions, Timestamp=timestamp) for d in data]


def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str))


def job_name() -> str:
    config = OPT_ML / "config/processingjobconfig.json"
    return json.loads(config.read_text())["ProcessingJobName"] if config.exists() else "local-run"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    base = OPT_ML / "processing"
    parser = argparse.ArgumentParser(description="FraudLab data-quality drift monitor")
    parser.add_argument("--mode", choices=("baseline", "monitor"), required=True)
    parser.add_argument("--reference", type=Path, default=base / "input/reference", help="baseline: features CSV folder")
    parser.add_argument("--baseline", type=Path, default=base / "input/baseline", help="monitor: baseline folder")
    parser.add_argument("--output", type=Path, default=base / "output")
    parser.add_argument("--comparison-threshold", type=float, default=0.1)
    parser.add_argument("--uncompared", default="", help="baseline: features whose distribution is not compared, comma-separated")
    parser.add_argument("--uncompared-reason", default="its distribution depends on when the window is, not on drift")
    parser.add_argument("--bucket", help="monitor: bucket holding the captured data")
    parser.add_argument("--capture-prefix", help="monitor: e.g. capture/<endpoint>/AllTraffic")
    parser.add_argument("--window-end", help="monitor: ISO time; with --window-start the window's end, else the scheduled time")
    parser.add_argument("--window-start", help="monitor: ISO time; without it, the window is the whole hours before the scheduled time (see scheduled_window)")
    parser.add_argument("--window-hours", type=float, default=1.0)
    parser.add_argument("--settle-minutes", type=float, default=15.0, help="monitor: how long capture files may take to land (scheduled windows)")
    parser.add_argument("--endpoint", help="monitor: metric dimension Endpoint")
    parser.add_argument("--schedule", help="monitor: metric dimension MonitoringSchedule")
    parser.add_argument("--namespace", default="FraudLab")
    parser.add_argument("--region")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode == "baseline":
        uncompared = {name: args.uncompared_reason for name in filter(None, args.uncompared.split(","))}
        summary = run_baseline(args.reference, args.output, args.comparison_threshold, uncompared)
        print(json.dumps({"baseline": summary}))
        return 0

    import boto3  # only the monitor talks to AWS (the baseline runs network-isolated)

    end = _parse_time(args.window_end) if args.window_end else datetime.now(timezone.utc)
    if args.window_start:
        start = _parse_time(args.window_start)
    else:
        start, end = scheduled_window(end, args.window_hours, args.settle_minutes)
    session = boto3.Session(region_name=args.region)
    lines = read_s3_capture(session.client("s3"), args.bucket, args.capture_prefix, start, end)
    report = run_monitor(args.baseline, lines, start, end)

    folder = args.output / f"{end:%Y/%m/%d/%H}" / job_name()
    for name in ("statistics", "constraint_violations"):
        if name in report:
            _write(folder / f"{name}.json", report[name])
    _write(folder / "constraints.json", json.loads((args.baseline / "constraints.json").read_text()))
    dimensions = [{"Name": "Endpoint", "Value": args.endpoint}, {"Name": "MonitoringSchedule", "Value": args.schedule}]
    metrics = metric_data(report, dimensions, datetime.now(timezone.utc))
    cloudwatch = session.client("cloudwatch")
    for first in range(0, len(metrics), 20):
        cloudwatch.put_metric_data(Namespace=args.namespace, MetricData=metrics[first : first + 20])
    _write(folder / "metrics.json", metrics)
    _write(folder / "result.json", report["result"])
    print(json.dumps(report["result"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
