"""Step 06 — Score held-out transactions through the endpoint.

What you do: run `python lab_scripts/06_score_transactions.py [--count 1000] [--single 200]`.
What you see: the client computing each payment's features with the same module the
processing job used (processing/features.py: no training/serving skew), from the history
that landed in S3; the first --single payments sent one per request (how a payment
terminal calls), the rest in batches of 100; a sample of scored payments, the alerts, the
precision and recall against the labels delivered apart, the client-side latency
percentiles; and a malformed request answered with a 4xx while the endpoint keeps serving.

Where to look: SageMaker console > the endpoint > Monitor (Invocations, ModelLatency);
S3 capture/<endpoint>/AllTraffic/yyyy/mm/dd/hh/ for the captured requests.

Exam task statements: MLA-C01 3.1 (invoke endpoints: payloads, content types),
4.1 (monitor inference: latency, data capture), 2.3 (precision/recall in production);
MLS-C01 4.4 (expose endpoints and interact with them).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from labkit import console, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.outputs import lab_outputs, stack_outputs, stack_prefix
from labkit.sagemaker import read_pointer
from labkit.session import aws_session, client
from labkit.traffic import invoke, landed_history
from processing.features import FEATURE_COLUMNS, build_features

BATCH = 100


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--count", type=int, default=1000, help="held-out payments to score")
    parser.add_argument("--single", type=int, default=200, help="of which sent one per request")
    args = parser.parse_args()
    if args.count < 1 or not 0 <= args.single <= args.count:
        parser.error("need --count >= 1 and 0 <= --single <= --count")
    return args


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "RawPrefix")
    bucket, s3 = outputs["LabBucketName"], client(session, "s3")
    endpoint = stack_outputs(session, f"{stack_prefix()}-Endpoint").get("EndpointName")
    if endpoint is None:
        raise LabError("no endpoint yet: run lab_scripts/05_deploy_endpoint.py first")
    features_pointer = read_pointer(s3, bucket, "features/latest.json")
    if features_pointer is None:
        raise LabError("no features yet: run lab_scripts/02_feature_engineering.py first")
    schema = json.loads(s3.get_object(Bucket=bucket, Key=f"features/{features_pointer['job']}/schema/feature_schema.json")["Body"].read())

    console.heading("Compute features client-side with processing/features.py")
    transactions, labels = landed_history(s3, bucket, outputs["RawPrefix"])
    # The label delay the model was trained with, from its feature schema: the same features.
    features = build_features(transactions, labels.fillna(0), label_delay_days=schema["label_delay_days"])
    held_out = transactions["timestamp"] >= pd.Timestamp(schema["split"]["test_from"])
    chosen = transactions.index[held_out & labels.notna()][-args.count:]
    if len(chosen) == 0:
        raise LabError("no held-out payments with labels: stream more (step 01) and rerun step 02")
    console.done(f"{len(transactions):,} payments of history; scoring {len(chosen):,} held-out ones (from {schema['split']['test_from']})")

    console.heading(f"Score through {endpoint}")
    runtime = client(session, "sagemaker-runtime")
    rows = features.loc[chosen, FEATURE_COLUMNS].to_numpy()
    predictions, latencies = [], []
    progress = console.Progress(len(rows), "scored")
    for start, size in [(i, 1) for i in range(args.single)] + [(i, BATCH) for i in range(args.single, len(rows), BATCH)]:
        scored, milliseconds = invoke(runtime, endpoint, rows[start : start + size])
        predictions.extend(scored)
        if size == 1:
            latencies.append(milliseconds)
        progress.advance(len(scored))
    progress.close()

    scored = transactions.loc[chosen, ["transaction_id", "amount", "merchant_category"]].assign(
        fraud_probability=[p["fraud_probability"] for p in predictions],
        alert=[p["is_fraud"] for p in predictions],
        actual=labels[chosen].astype(int).to_numpy(),
    )
    console.table([tuple(r) for r in scored.sort_values("fraud_probability", ascending=False).head(8).itertuples(index=False)], tuple(scored.columns))
    tp = int((scored["alert"] & (scored["actual"] == 1)).sum())
    alerts, frauds = int(scored["alert"].sum()), int(scored["actual"].sum())
    precision, recall = tp / alerts if alerts else 0.0, tp / frauds if frauds else 0.0
    console.done(f"{alerts} alerts on {len(scored):,} payments: precision {precision:.2f}, recall {recall:.2f} ({tp} of {frauds} frauds)")
    if latencies:
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        console.note(f"client latency, single payments: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms")

    console.heading("A malformed request (a header row) is refused, and the endpoint keeps serving")
    try:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=",".join(FEATURE_COLUMNS))
        raise LabError("the endpoint accepted a header row as data")
    except ClientError as error:
        response = error.response
        console.done(f"{response['Error']['Code']} ({response.get('OriginalStatusCode', '4xx')}): {response.get('OriginalMessage', response['Error'].get('Message', ''))[:120]}")
    invoke(runtime, endpoint, rows[:1])
    console.done("the next request is answered normally")
    results.record(
        f"{len(scored):,} scored, precision {precision:.2f}, recall {recall:.2f}" + (f", p50 {p50:.1f} ms" if latencies else ""),
        scored=len(scored), precision=precision, recall=recall,
        latency_p50_ms=float(p50) if latencies else float("nan"), latency_p99_ms=float(p99) if latencies else float("nan"),
    )
    return 0


if __name__ == "__main__":
    run_step(main)
