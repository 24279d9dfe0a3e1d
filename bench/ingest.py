"""Ingestion figures: generator speed, offline deploy, streaming and read-back of 100k records."""
from __future__ import annotations

import json
import resource
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


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    _, figures["generator_1m_transactions_s"] = timed(lambda: generate(1_000_000, seed=1))
    figures["generator_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

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
