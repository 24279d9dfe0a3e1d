"""Drift monitor figures: detection per injected kind, false alarms on clean windows, and the
run time of the monitor job on 100k captured requests through the offline backend."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab_scripts"))

from labkit import drift  # noqa: E402
from labkit.transactions import generate  # noqa: E402
from localaws.server import LocalAws  # noqa: E402
from processing import drift_monitor as dm  # noqa: E402
from processing.features import FEATURE_COLUMNS, LABEL_DELAY_DAYS, build_features  # noqa: E402

CLOCK = {f: "clock" for f in ("hour_of_day", "is_weekend", "is_night")}
WINDOW_ROWS = 1000
CAPTURED_REQUESTS = 100_000


def lab_features(seed: int):
    data = generate(20_000, seed=seed)
    history = data.transactions.assign(timestamp=pd.to_datetime(data.transactions["timestamp"], utc=True))
    features = build_features(history, data.labels["is_fraud"])[FEATURE_COLUMNS]
    train = history.index[history["timestamp"] < history["timestamp"].quantile(0.7)]
    return history, data.labels["is_fraud"], features, train


def capture(values: np.ndarray, at: datetime, rows_per_request: int) -> list[str]:
    lines = []
    for start in range(0, len(values), rows_per_request):
        body = "\n".join(",".join("" if np.isnan(v) else f"{v:.6g}" for v in row) for row in values[start : start + rows_per_request])
        lines.append(json.dumps({
            "captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": body, "encoding": "CSV"}},
            "eventMetadata": {"eventId": str(start), "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}, "eventVersion": "0",
        }))
    return lines


def run() -> dict[str, float]:
    history, labels, features, train = lab_features(7)
    _, _, other_features, other_train = lab_features(99)
    _, constraints, _ = dm.suggest_baseline(features.loc[train].reset_index(drop=True), 0.1, CLOCK)
    start = datetime.now(timezone.utc).replace(microsecond=0)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp)
        (baseline / "constraints.json").write_text(json.dumps(constraints))
        features.loc[train].to_csv(baseline / "reference.csv", index=False)
        window = lambda values: dm.run_monitor(baseline, capture(values, start + timedelta(minutes=1), 100), start, start + timedelta(hours=1))  # noqa: E731

        rng = np.random.default_rng(1)
        for kind in drift.KINDS:
            rows = pd.Index(rng.choice(train, WINDOW_ROWS, replace=False))
            found = {(v["feature_name"], v["constraint_check_type"]) for v in window(drift.features_for(history, labels, rows, [kind], LABEL_DELAY_DAYS))["constraint_violations"]["violations"]}
            figures[f"drift_{kind}_detected_bool"] = float(drift.EXPECTED[kind] in found)
            figures[f"drift_{kind}_violations_count"] = float(len(found))
        same = [window(features.loc[rng.choice(train, WINDOW_ROWS, replace=False)].to_numpy(float)) for _ in range(10)]
        other = [window(other_features.loc[rng.choice(other_train, WINDOW_ROWS, replace=False)].to_numpy(float)) for _ in range(10)]
        figures["drift_false_alarms_same_population_of_10_count"] = float(sum(bool(r["constraint_violations"]["violations"]) for r in same))
        figures["drift_false_alarms_new_population_of_10_count"] = float(sum(bool(r["constraint_violations"]["violations"]) for r in other))
        figures["drift_clean_max_distance_ratio"] = max(max(r["distances"].values()) for r in same)

        # 100k captured requests (one payment each), in-process and as the offline Processing job.
        values = features.loc[rng.choice(train, CAPTURED_REQUESTS, replace=True)].to_numpy(float)
        lines = capture(values, start + timedelta(minutes=1), 1)
        began = time.perf_counter()
        dm.run_monitor(baseline, lines, start, start + timedelta(hours=1))
        figures["drift_monitor_100k_requests_in_process_s"] = time.perf_counter() - began
        figures["drift_monitor_100k_requests_job_s"] = run_job(baseline, lines, start)
    return figures


def run_job(baseline: Path, lines: list[str], start: datetime) -> float:
    """The monitor as a Processing job on the local AWS: capture in S3, reports and metrics out."""
    with LocalAws() as server:
        session = server.session()
        s3, sagemaker = session.client("s3"), session.client("sagemaker")
        s3.create_bucket(Bucket="bench")
        hour = f"capture/bench-endpoint/AllTraffic/{start:%Y/%m/%d/%H}/"
        for part in range(0, len(lines), 10_000):
            s3.put_object(Bucket="bench", Key=f"{hour}part-{part:06d}.jsonl", Body="\n".join(lines[part : part + 10_000]).encode())
        for name in ("constraints.json", "reference.csv"):
            s3.upload_file(str(baseline / name), "bench", f"monitoring/baseline/{name}")
        s3.upload_file(str(ROOT / "processing" / "drift_monitor.py"), "bench", "code/drift_monitor.py")
        s3_input = lambda name, uri, local: {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}  # noqa: E731
        began = time.perf_counter()
        sagemaker.create_processing_job(
            ProcessingJobName="bench-drift",
            RoleArn="arn:aws:iam::123456789012:role/bench",
            AppSpecification={"ImageUri": "xgboost", "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/drift_monitor.py"], "ContainerArguments": [
                "--mode", "monitor", "--baseline", "/opt/ml/processing/input/baseline", "--output", "/opt/ml/processing/resultdata", "--bucket", "bench",
                "--capture-prefix", "capture/bench-endpoint/AllTraffic", "--window-start", start.isoformat(), "--window-end", (start + timedelta(hours=1)).isoformat(),
                "--endpoint", "bench-endpoint", "--schedule", "bench", "--region", server.region]},
            ProcessingInputs=[s3_input("code", "s3://bench/code/", "/opt/ml/processing/input/code"), s3_input("baseline", "s3://bench/monitoring/baseline/", "/opt/ml/processing/input/baseline")],
            ProcessingOutputConfig={"Outputs": [{"OutputName": "reports", "S3Output": {"S3Uri": "s3://bench/monitoring/reports/", "LocalPath": "/opt/ml/processing/resultdata", "S3UploadMode": "EndOfJob"}}]},
            ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10}},
            StoppingCondition={"MaxRuntimeInSeconds": 1800},
        )
        state = server.jobs.wait("bench-drift", timeout=1800)
        if state.status != "Completed":
            raise RuntimeError(f"bench drift job {state.status}: {state.failure_reason}")
        return time.perf_counter() - began
