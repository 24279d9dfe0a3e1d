"""Ingestion figures: generator speed, offline deploy, streaming and read-back of 100k records."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab_scripts"))

from labkit.firehose import send_records  # noqa: E402
from labkit.landed import read_landed  # noqa: E402
from labkit.transactions import generate  # noqa: E402
from localaws.cloudformation.deploy import deploy_assembly  # noqa: E402
from localaws.server import LocalAws  # noqa: E402
from localaws.cloudformation.synth import synthesize  # noqa: E402

STREAMED = 100_000


def timed(action):
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


# One generation in a fresh process: its time and its peak memory are its own.
GENERATE = """
import resource, sys, time
sys.path.insert(0, "lab_scripts")
from labkit.transactions import generate
started = time.perf_counter()
generate(int(sys.argv[1]), seed=1)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def generator_scaling(rounds: int = 3) -> dict[str, float]:
    """1M and 5M transactions, alternating, best of `rounds`: is the generator linear?"""
    best: dict[int, tuple[float, float]] = {}
    for _ in range(rounds):
        for size in (1_000_000, 5_000_000):
            out = subprocess.run([sys.executable, "-c", GENERATE, str(size)], cwd=ROOT, check=True, capture_output=True, text=True).stdout
            seconds, peak_kib = (float(v) for v in out.split())
            if size not in best or seconds < best[size][0]:
                best[size] = (seconds, peak_kib)
    return {
        "generator_1m_transactions_s": best[1_000_000][0],
        "generator_5m_transactions_s": best[5_000_000][0],
        "generator_5m_vs_1m_time_ratio": best[5_000_000][0] / best[1_000_000][0],
        "generator_5m_peak_kib_per_transaction": best[5_000_000][1] / 5_000_000,
    }


def run() -> dict[str, float]:
    figures = generator_scaling()

    with tempfile.TemporaryDirectory() as scratch:
        app, figures["synth_in_process_s"] = timed(lambda: synthesize(Path(scratch) / "cdk.out"))
        with LocalAws() as local:
            session = local.session()
            reports, figures["offline_deploy_s"] = timed(lambda: deploy_assembly(Path(app.outdir), session))
            outputs = {k: v for r in reports for k, v in r.outputs.items()}
            data = generate(STREAMED, seed=2)
            records = [json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in data.transactions.to_dict("records")]
            summary, seconds = timed(
                lambda: send_records(session.client("firehose"), outputs["DeliveryStreamName"], records)
            )
            assert summary.sent == STREAMED and not summary.failed
            figures["ingest_100k_records_s"] = seconds
            figures["ingest_records_per_s"] = STREAMED / seconds
            landed, figures["landed_read_100k_records_s"] = timed(
                lambda: read_landed(session.client("s3"), outputs["LabBucketName"], outputs["RawPrefix"])
            )
            assert landed.records == STREAMED
    return figures
