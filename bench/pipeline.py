"""Feature job and training figures: throughput at 1M transactions, model quality by size."""
from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab_scripts"))

from labkit import metrics  # noqa: E402
from labkit.transactions import generate  # noqa: E402
from localaws.sagemaker import builtin_xgboost  # noqa: E402
from processing.records import decode_object  # noqa: E402

RECORDS_PER_OBJECT = 10_000  # roughly what a 5 MiB Firehose buffer holds, compressed
HYPERPARAMETERS = {
    "objective": "binary:logistic", "eval_metric": "aucpr", "num_round": "400", "early_stopping_rounds": "30",
    "max_depth": "5", "eta": "0.1", "subsample": "0.8", "colsample_bytree": "0.8", "seed": "7",
}


def landed_like_firehose(count: int, seed: int, directory: Path) -> None:
    data = generate(count, seed=seed)
    rows = data.transactions.to_dict("records")
    for start in range(0, count, RECORDS_PER_OBJECT):
        body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows[start : start + RECORDS_PER_OBJECT])
        (directory / "raw" / f"part-{start:08d}.gz").write_bytes(gzip.compress(body.encode(), compresslevel=6))
    data.labels.to_csv(directory / "labels" / "labels.csv", index=False)


def run_feature_job(directory: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of the processing entrypoint in its own process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "processing/feature_job.py"), "--raw", str(directory / "raw"), "--labels", str(directory / "labels"),
         "--output", str(directory / "features"), "--quarantine", str(directory / "quarantine")],
        check=True, capture_output=True,
    )
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def quality(directory: Path, prefix: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    features = directory / "features"
    schema = json.loads((features / "schema/feature_schema.json").read_text())
    train = schema["splits"]["train"]
    params = {**HYPERPARAMETERS, "scale_pos_weight": str((train["rows"] - train["fraud"]) / train["fraud"])}
    started = time.perf_counter()
    builtin_xgboost.train(params, {"train": features / "train", "validation": features / "validation"}, directory / "model", None, lambda line: None)
    figures[f"{prefix}_training_s"] = time.perf_counter() - started
    booster = xgb.Booster()
    booster.load_model(bytearray((directory / "model/xgboost-model").read_bytes()))
    test = np.vstack([np.loadtxt(p, delimiter=",", ndmin=2) for p in sorted((features / "test").glob("*.csv"))])
    score = booster.predict(xgb.DMatrix(test[:, 1:]))
    figures[f"{prefix}_test_pr_auc"] = metrics.average_precision(test[:, 0], score)
    figures[f"{prefix}_test_roc_auc"] = metrics.roc_auc(test[:, 0], score)
    figures[f"{prefix}_test_recall_at_1pct"] = metrics.recall_at_budget(test[:, 0], score, 0.01)
    figures[f"{prefix}_test_rule_pr_auc"] = metrics.average_precision(test[:, 0], np.expm1(test[:, 1]))
    return figures


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    for size, prefix in ((20_000, "default_20k"), (1_000_000, "large_1m")):
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            (directory / "raw").mkdir()
            (directory / "labels").mkdir()
            landed_like_firehose(size, seed=11, directory=directory)
            if size == 1_000_000:
                started = time.perf_counter()
                lines = sum(len(decode_object(p.read_bytes())) for p in sorted((directory / "raw").iterdir()))
                read_seconds = time.perf_counter() - started
                assert lines == size
                seconds, peak = run_feature_job(directory)
                figures["processing_1m_rows_per_s"] = size / seconds
                figures["processing_1m_peak_rss_mib"] = peak
                figures["read_gunzip_1m_rows_per_s"] = size / read_seconds
                figures["processing_to_read_gunzip_time_ratio"] = seconds / read_seconds
            else:
                run_feature_job(directory)
                figures.update(training_beside_a_busy_core(directory))
            figures.update(quality(directory, prefix))
    return figures


def training_beside_a_busy_core(directory: Path, repeats: int = 5) -> dict[str, float]:
    """20k training while one other process keeps a core busy (as the local AWS and a lab
    step do): the offline runner's fitted thread count vs one thread per core (xgboost's
    default), median seconds and the slowest/fastest spread of each."""
    features = directory / "features"
    channels = {"train": features / "train", "validation": features / "validation"}
    cores = builtin_xgboost.usable_cores()
    figures: dict[str, float] = {}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for label, extra in (("fitted", {}), ("per_core", {"nthread": str(cores)})):
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                builtin_xgboost.train({**HYPERPARAMETERS, **extra}, channels, directory / "busy-model", None, lambda line: None)
                times.append(time.perf_counter() - started)
            figures[f"training_20k_busy_core_{label}_s"] = float(np.median(times))
            figures[f"training_20k_busy_core_{label}_max_vs_min_ratio"] = max(times) / min(times)
    finally:
        busy.kill()
        busy.wait()
    figures["training_20k_busy_core_per_core_vs_fitted_ratio"] = figures["training_20k_busy_core_per_core_s"] / figures["training_20k_busy_core_fitted_s"]
    return figures
