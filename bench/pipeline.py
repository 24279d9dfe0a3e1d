"""Feature job and training figures: the job at 1M transactions against its read floor and
a DuckDB peer, training time beside a busy core, model quality at the default size and 1M."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pa_csv
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab_scripts"))

from labkit.transactions import generate  # noqa: E402
from localaws.offline_lab import step_arguments  # noqa: E402
from localaws.runtime.image_env import image_python  # noqa: E402
from localaws.sagemaker import builtin_xgboost  # noqa: E402
from processing import evaluation  # noqa: E402
from processing.training import HYPERPARAMETERS, scale_pos_weight  # noqa: E402

RECORDS_PER_OBJECT = 10_000  # roughly what a 5 MiB Firehose buffer holds, compressed


def landed_like_firehose(count: int, seed: int, directory: Path) -> None:
    data = generate(count, seed=seed)
    rows = data.transactions.to_dict("records")
    for start in range(0, count, RECORDS_PER_OBJECT):
        body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows[start : start + RECORDS_PER_OBJECT])
        (directory / "raw" / f"part-{start:08d}.gz").write_bytes(gzip.compress(body.encode(), compresslevel=6))
    data.labels.to_csv(directory / "labels" / "labels.csv", index=False)


AS_OF = "2027-01-01T00:00:00"  # every label known: the job and the peer see the same rows
# The floor: read every object, gunzip it, json.loads each line, nothing else (the image's python).
FLOOR = """
import gzip, json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).iterdir()):
    for line in gzip.decompress(path.read_bytes()).decode().split("\\n"):
        if line.strip():
            json.loads(line)
"""


# Runs a command and reports its peak RSS. It sits between the benchmark and the command
# because Linux carries the RSS high-water mark across fork and exec: a command started
# straight from this (large) process would report this process's peak, not its own.
PEAK = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(command: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one command in its own process."""
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, "-c", PEAK, str(peak_file), *command], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            raise RuntimeError(f"{command[:2]} failed: {completed.stderr.decode()[-2000:]}")
        return seconds, int(peak_file.read_text()) / 1024


def feature_job_command(directory: Path, output: str = "features") -> list[str]:
    """The processing entrypoint as the offline Processing job runs it: in the image's python."""
    return [str(image_python()), "processing/feature_job.py", "--raw", str(directory / "raw"), "--labels", str(directory / "labels"),
            "--output", str(directory / output), "--quarantine", str(directory / "quarantine"), "--as-of", AS_OF]


def feature_job_against_floor_and_peer(directory: Path, rounds: int = 2) -> dict[str, float]:
    """The job, the read floor and the DuckDB peer, alternating, best of `rounds` each; then
    the peer's outputs are checked against the job's (same rows, values to 6 digits)."""
    commands = {
        "floor": [str(image_python()), "-c", FLOOR, str(directory / "raw")],
        "job": feature_job_command(directory),
        "peer": [sys.executable, "-c", "import sys; from pathlib import Path; from bench import reference_features as r; "
                 f"r.run(Path({str(directory / 'raw')!r}), Path({str(directory / 'labels')!r}), Path({str(directory / 'peer')!r}), {AS_OF!r})"],
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, command in commands.items():
            seconds, peak = measured(command)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, peak)
    same_outputs(directory / "features", directory / "peer")
    rows = json.loads((directory / "features/schema/feature_schema.json").read_text())["rows"]["read"]
    (job, job_peak), (floor, _), (peer, peer_peak) = best["job"], best["floor"], best["peer"]
    return {
        "processing_1m_s": job,
        "processing_1m_rows_per_s": rows / job,
        "processing_1m_peak_rss_mib": job_peak,
        "processing_floor_read_gunzip_json_1m_s": floor,
        "processing_vs_floor_time_ratio": job / floor,
        "processing_peer_duckdb_1m_s": peer,
        "processing_peer_duckdb_1m_peak_rss_mib": peer_peak,
        "processing_vs_peer_duckdb_time_ratio": job / peer,
    }


def read_numbers(path: Path) -> np.ndarray:
    return pa_csv.read_csv(path, read_options=pa_csv.ReadOptions(autogenerate_column_names=True)).to_pandas().to_numpy(float)


def same_outputs(job: Path, peer: Path) -> None:
    """Same rows in the same order, every value equal to 6 significant digits."""
    for name in ("train", "validation", "test"):
        ours, theirs = read_numbers(next((job / name).glob("*.csv"))), read_numbers(next((peer / name).glob("*.csv")))
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        np.testing.assert_allclose(ours, theirs, rtol=5e-6, atol=0, err_msg=f"{name}: the DuckDB peer disagrees with the job")


def _read(directory: Path, header: bool) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, header=0 if header else None) for p in sorted(directory.glob("*.csv"))], ignore_index=True)


def quality(directory: Path, prefix: str, size: int) -> dict[str, float]:
    """Model quality exactly as step 04 and the pipeline measure it (processing/evaluation.py: the best iteration,
    known-compromised cards removed, 95 % intervals), at the alert budget `make lab` gives
    this size."""
    figures: dict[str, float] = {}
    features = directory / "features"
    schema = json.loads((features / "schema/feature_schema.json").read_text())
    train = schema["splits"]["train"]
    params = {**HYPERPARAMETERS, "scale_pos_weight": str(scale_pos_weight(train["rows"], train["fraud"]))}
    started = time.perf_counter()
    builtin_xgboost.train(params, {"train": features / "train", "validation": features / "validation"}, directory / "model", None, lambda line: None)
    figures[f"{prefix}_training_s"] = time.perf_counter() - started
    booster = xgb.Booster()
    booster.load_model(bytearray((directory / "model/xgboost-model").read_bytes()))
    k = int(step_arguments("04_evaluate_and_register", size)[1])
    report = evaluation.evaluate(booster, *(_read(features / name, header) for name, header in (
        ("validation", False), ("test", False), ("validation-ids", True), ("test-ids", True))), k)
    for who, key in (("model", "model"), ("rule", "rule_baseline")):
        for figure in ("pr_auc", "roc_auc", "card_precision"):
            figures[f"{prefix}_{who}_test_{figure}"] = report[key][figure]
            figures[f"{prefix}_{who}_test_{figure}_ci_low"], figures[f"{prefix}_{who}_test_{figure}_ci_high"] = report[key]["interval"][figure]
    figures[f"{prefix}_test_card_precision_best_possible"] = report["model"]["best_possible"]
    figures[f"{prefix}_alert_budget_cards_per_day"] = k
    figures[f"{prefix}_test_frauds_count"] = report["test_fraud"]
    for scenario, caught in report["recall_by_scenario"].items():
        figures[f"{prefix}_recall_{scenario}"] = caught["caught"] / caught["fraud"]
    figures[f"{prefix}_model_over_rule_pr_auc_ratio"] = figures[f"{prefix}_model_test_pr_auc"] / figures[f"{prefix}_rule_test_pr_auc"]
    return figures


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    # 20k: training time beside a busy core; 100k (the default lab) and 1M: model quality,
    # seed 7 as `make lab` streams it; 1M also the feature job against its floor and peer.
    for size, prefix in ((20_000, "small_20k"), (100_000, "default_100k"), (1_000_000, "large_1m")):
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            (directory / "raw").mkdir()
            (directory / "labels").mkdir()
            landed_like_firehose(size, seed=7, directory=directory)
            if size == 1_000_000:
                figures.update(feature_job_against_floor_and_peer(directory))
            else:
                measured(feature_job_command(directory))
            if size == 20_000:
                figures.update(training_beside_a_busy_core(directory))
            else:
                figures.update(quality(directory, prefix, size))
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
