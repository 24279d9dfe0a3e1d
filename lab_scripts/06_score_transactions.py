"""Step 06 — Score held-out transactions: in real time through the endpoint, and a whole day in batch.

What you do: run `python lab_scripts/06_score_transactions.py [--count 1000] [--single 200] [--no-batch]`.
What you see: the client computing each payment's features with the same module the
processing job used (processing/features.py: no training/serving skew), from the history
that landed in S3; the first --single payments sent one per request (how a payment
terminal calls), the rest in batches of 100; a sample of scored payments, the alerts, the
precision and recall against the labels delivered apart, the client-side latency
percentiles; and a malformed request answered with a 4xx while the endpoint keeps serving.
Then the last whole day of the test period scored by a batch transform job with the
endpoint's own model (same container, network isolation, VPC and role; KMS on input,
output and volume): SplitType Line, BatchStrategy MultiRecord, MaxPayloadInMB 1, an
InputFilter that hides the transaction id from the model, JoinSource Input and an
OutputFilter that keeps id and probability; its scores compared with the endpoint's for
the same payments (identical), and what each way of scoring that day costs.

Where to look: SageMaker console > the endpoint > Monitor (Invocations, ModelLatency);
S3 capture/<endpoint>/AllTraffic/yyyy/mm/dd/hh/ for the captured requests; SageMaker
console > Inference > Batch transform jobs; S3 batch/input/ and batch/output/.

Exam task statements: MLA-C01 3.1 (invoke endpoints: payloads, content types; choose
batch or real-time inference), 4.1 (monitor inference: latency, data capture), 4.2
(cost: batch against an always-on endpoint), 2.3 (precision/recall in production);
MLS-C01 4.4 (expose endpoints and interact with them).
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from labkit import batch, console, results
from labkit.cost import TRANSFORM_JOB, load_prices
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.outputs import lab_outputs, stack_outputs, stack_prefix
from labkit.sagemaker import feature_schema
from labkit.session import aws_session, client
from labkit.traffic import features_of, invoke, landed_history
from processing.features import FEATURE_COLUMNS

BATCH = 100


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--count", type=int, default=1000, help="held-out payments to score")
    parser.add_argument("--single", type=int, default=200, help="of which sent one per request")
    parser.add_argument("--no-batch", action="store_true", help="skip the batch transform of a whole day")
    args = parser.parse_args()
    if args.count < 1 or not 0 <= args.single <= args.count:
        parser.error("need --count >= 1 and 0 <= --single <= --count")
    return args


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "RawPrefix", "KeyArn")
    bucket, s3 = outputs["LabBucketName"], client(session, "s3")
    endpoint = stack_outputs(session, f"{stack_prefix()}-Endpoint").get("EndpointName")
    if endpoint is None:
        raise LabError("no endpoint yet: run lab_scripts/05_deploy_endpoint.py first")
    schema = feature_schema(s3, bucket)

    console.heading("Compute features client-side with processing/features.py")
    transactions, labels = landed_history(s3, bucket, outputs["RawPrefix"])
    held_out = transactions["timestamp"] >= pd.Timestamp(schema["split"]["test_from"])
    chosen = transactions.index[held_out & labels.notna()][-args.count:]
    if len(chosen) == 0:
        raise LabError("no held-out payments with labels: stream more (step 01) and rerun step 02")
    console.done(f"{len(transactions):,} payments of history; scoring {len(chosen):,} held-out ones (from {schema['split']['test_from']})")

    console.heading(f"Score through {endpoint}")
    runtime = client(session, "sagemaker-runtime")
    # The label delay the model was trained with, from its feature schema: the same features.
    rows = features_of(transactions, labels, chosen, schema["label_delay_days"])
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
    batch_figures = {} if args.no_batch else score_a_day_in_batch(session, outputs, endpoint, schema, transactions, labels)
    results.record(
        f"{len(scored):,} scored, precision {precision:.2f}, recall {recall:.2f}" + (f", p50 {p50:.1f} ms" if latencies else "")
        + (f"; batch: {batch_figures['batch_rows']:,} identical" if batch_figures else ""),
        scored=len(scored), precision=precision, recall=recall,
        latency_p50_ms=float(p50) if latencies else float("nan"), latency_p99_ms=float(p99) if latencies else float("nan"),
        **batch_figures,
    )
    return 0


def score_a_day_in_batch(session, outputs: dict, endpoint: str, schema: dict, transactions: pd.DataFrame, labels: pd.Series) -> dict:
    """The last whole day of the test period through a transform job, checked against the endpoint."""
    periods = schema["split"]["periods"]
    day = max(pd.Timestamp(periods["maturing"]).floor("D") - pd.Timedelta(days=1), pd.Timestamp(periods["test"]).floor("D"))
    rows = transactions.index[(transactions["timestamp"] >= day) & (transactions["timestamp"] < day + pd.Timedelta(days=1))]
    sagemaker, s3 = client(session, "sagemaker"), client(session, "s3")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"])
    model = config["ProductionVariants"][0]["ModelName"]
    console.heading(f"Batch transform: every payment of {day:%Y-%m-%d} ({len(rows):,}) with the endpoint's model {model}")
    ids, values = transactions.loc[rows, "transaction_id"], features_of(transactions, labels, rows, schema["label_delay_days"])
    run = batch.run_batch(s3, sagemaker, outputs["LabBucketName"], outputs["KeyArn"], model, ids, values)
    console.done(f"{run.job}: {run.rows:,} payments scored in {run.seconds:.1f} s, s3://{outputs['LabBucketName']}/batch/output/{run.job}/")
    online = batch.endpoint_scores(client(session, "sagemaker-runtime"), endpoint, ids, values)
    same = int((run.scores.reindex(online.index) == online).sum())
    if run.rows != len(rows) or same != len(rows):
        raise LabError(f"the transform job's scores differ from the endpoint's: {same:,} of {len(rows):,} identical ({run.rows:,} written)")
    console.done(f"{same:,} of {len(rows):,} probabilities identical to the endpoint's for the same payments")
    prices = load_prices(session.region_name)
    hourly = prices.usd("sagemaker_transform", batch.INSTANCE_TYPE)
    # On AWS a transform job bills its instance from start-up to the end: at least the estimate of TRANSFORM_JOB.
    billed_minutes = max(run.seconds / 60, TRANSFORM_JOB[1])
    console.table(
        [("batch transform job, 1 x " + batch.INSTANCE_TYPE, f"~{billed_minutes:.0f} min billed", f"USD {hourly * billed_minutes / 60:.4f}"),
         ("real-time endpoint, 1 x " + batch.INSTANCE_TYPE + ", up all day", "24 h", f"USD {prices.usd('sagemaker_hosting', batch.INSTANCE_TYPE) * 24:.2f}")],
        ("scoring one day of payments", "instance time", "list price"),
    )
    console.note("batch suits scoring that can wait (a nightly review); the endpoint, a decision while the customer pays")
    return {"batch_rows": run.rows, "batch_identical": same, "batch_seconds": run.seconds, "batch_job": run.job}


if __name__ == "__main__":
    run_step(main)
