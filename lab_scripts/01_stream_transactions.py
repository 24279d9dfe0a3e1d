"""Step 01 — Stream transactions through Kinesis Data Firehose into S3.

What you do: run `python lab_scripts/01_stream_transactions.py [--count N] [--seed S]`.
What you see: a progress bar while N generated card transactions go to Firehose in
batches of up to 500 newline-delimited JSON records (failed records are resent, nothing
else), with a few malformed records on purpose (--corrupt) for step 02 to quarantine; a summary (sent, retried, failed = 0); the ground-truth labels delivered apart,
to s3://<bucket>/labels/, as chargebacks arrive in a bank; then what actually landed in
S3, read back gzip-aware, counted per YYYY/MM/DD/HH partition. On AWS, Firehose buffers
(5 MiB or 60 s by default), so the step waits for the data to land.
Rerunning with the same --count and --seed after any failure (records Firehose refused,
a crash, the local AWS stopped) sends exactly the records that have not landed, never one
that has, and says how many it resent; after a full run it only verifies. Records Firehose
accepted but has not delivered yet (its buffer) are waited for, not resent.

Where to look: Firehose console > the stream > Monitoring (IncomingRecords,
DeliveryToS3.Records); S3 console > the lab bucket > raw/transactions/.

Exam task statements: MLA-C01 1.1 (ingest and store data: streaming sources, Firehose
delivery to S3, formats and compression), MLS-C01 1.2 (data ingestion solutions:
batch vs streaming), MLS-C01 1.3 (data transformation in transit: compression,
partitioning).
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import time
from pathlib import Path

import boto3

from labkit import console, polling, results
from labkit.cli import step_parser
from labkit.corruption import KINDS, corrupted_records
from labkit.errors import LabError, run_step
from labkit.firehose import MAX_RECORDS_PER_CALL, send_records
from labkit.landed import Landed, has_objects, read_landed
from labkit.outputs import lab_outputs
from labkit.session import aws_session, client
from labkit.transactions import generate

STREAM_STATE_DIR = Path("build/stream-state")


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--count", type=int, default=100_000, help="transactions to stream (60 days of a small issuer)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed: same seed, same transactions")
    parser.add_argument("--batch-size", type=int, default=MAX_RECORDS_PER_CALL, help="records per PutRecordBatch (1-500)")
    parser.add_argument("--wait", type=int, default=300, help="seconds to wait for Firehose to deliver")
    parser.add_argument("--corrupt", type=int, default=20, help="malformed records to send along")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.corrupt < 0:
        parser.error("--corrupt cannot be negative")
    if not 1 <= args.batch_size <= MAX_RECORDS_PER_CALL:
        parser.error(f"--batch-size must be 1-{MAX_RECORDS_PER_CALL}")
    return args


def batch_id(count: int, seed: int) -> str:
    """Names this dataset (its labels object and its local stream state)."""
    return f"seed{seed}-n{count}"


class AcceptedLog:
    """Transaction ids Firehose accepted, appended after every call (survives a crash): on a
    rerun, an accepted record not yet in S3 is in Firehose's buffer and must not be resent."""

    def __init__(self, batch: str) -> None:
        self.path = STREAM_STATE_DIR / f"{batch}.accepted"

    def ids(self) -> set[str]:
        return set(self.path.read_text().split()) if self.path.exists() else set()

    def modified(self) -> float:
        return self.path.stat().st_mtime if self.path.exists() else 0.0

    def append(self, ids: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as log:
            log.write("".join(f"{tid}\n" for tid in ids))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def buffer_seconds(session: boto3.Session, stream_name: str) -> int:
    """How long Firehose may hold an accepted record before it lands in S3."""
    description = client(session, "firehose").describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"]
    for destination in description.get("Destinations", []):
        hints = destination.get("ExtendedS3DestinationDescription", {}).get("BufferingHints", {})
        if "IntervalInSeconds" in hints:
            return int(hints["IntervalInSeconds"])
    return 300


def wait_for_in_flight(s3, bucket: str, raw_prefix: str, in_flight: set[str], window: float) -> Landed:
    """Wait (at most `window` s) for records Firehose accepted earlier to land; what has not
    landed by then was lost in the buffer and is resent."""
    deadline = time.monotonic() + window
    while True:
        landed = read_landed(s3, bucket, raw_prefix)
        waiting = sum(1 for tid in in_flight if tid not in landed.transaction_ids)
        if not waiting or time.monotonic() > deadline:
            return landed
        console.note(f"{waiting:,} records accepted by the last run are still in Firehose's buffer; checking again in {polling.PROGRESS_SECONDS:.0f} s")
        time.sleep(polling.PROGRESS_SECONDS)


def stream(session: boto3.Session, stream_name: str, transactions, batch_size: int, corrupted: list[bytes], log: AcceptedLog) -> None:
    # One JSON object per line: without the newline, records run together in S3 objects.
    # The malformed records go first, so a run cut short has still sent them.
    ids = [None] * len(corrupted) + list(transactions["transaction_id"])
    valid = (json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in transactions.to_dict("records"))
    records = itertools.chain(corrupted, valid)
    progress = console.Progress(len(transactions) + len(corrupted), "sent")

    def accepted(indices: list[int]) -> None:
        log.append([ids[i] for i in indices if ids[i] is not None])
        progress.advance(len(indices))

    summary = send_records(client(session, "firehose"), stream_name, records, batch_size=batch_size, on_accepted=accepted)
    progress.close()
    console.table(
        [(summary.sent, summary.retried, len(summary.failed), summary.unsent, summary.calls)],
        ("sent", "retried", "failed", "not sent", "PutRecordBatch calls"),
    )
    if summary.failed:
        raise LabError(
            f"{len(summary.failed):,} records still failed after retries and {summary.unsent:,} were not sent (Firehose kept "
            "refusing): rerun this step with the same --count and --seed; it sends only what has not landed"
        )


def deliver_labels(s3, bucket: str, key: str, labels) -> None:
    buffer = io.StringIO()
    labels.to_csv(buffer, index=False)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue().encode(), ContentType="text/csv")
    console.done(f"labels for {len(labels):,} transactions ({labels['is_fraud'].sum():,} fraud) at s3://{bucket}/{key}")


def verify_landed(s3, bucket: str, raw_prefix: str, expected_ids: set[str], sent_duplicates: int, wait_seconds: int, resent: int, **run: int) -> None:
    """Wait until every expected record has landed; record the figures (and `run`: seed, count)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        landed = read_landed(s3, bucket, raw_prefix)
        found = sum(1 for tid in expected_ids if tid in landed.transaction_ids)
        if found == len(expected_ids) or time.monotonic() > deadline:
            break
        console.note(f"{found:,}/{len(expected_ids):,} landed; Firehose is still buffering, checking again in {polling.PROGRESS_SECONDS:.0f} s")
        time.sleep(polling.PROGRESS_SECONDS)
    # Duplicates beyond the ones sent on purpose would mean a retry delivered a record twice.
    duplicates = sum(count - 1 for tid, count in landed.transaction_ids.items() if tid in expected_ids and count > 1) - sent_duplicates
    console.table(
        [(p, landed.objects_per_partition[p], landed.records_per_partition[p]) for p in sorted(landed.objects_per_partition)],
        ("partition (UTC)", "objects", "records"),
    )
    console.note(f"{landed.gzip_objects} of {sum(landed.objects_per_partition.values())} objects were gzip")
    if found < len(expected_ids):
        raise LabError(f"only {found:,} of {len(expected_ids):,} records landed in {wait_seconds} s: rerun this step to check again")
    console.done(f"all {found:,} records of this batch landed in S3 ({duplicates} unexpected duplicates)")
    if resent:
        console.done(f"this run resent {resent:,} records that had not landed; none that had")
    console.note(f"{landed.unreadable_lines} unreadable lines in the bucket: malformed records, for step 02 to quarantine")
    for key in landed.corrupt_objects:
        console.failed(f"s3://{bucket}/{key} is not readable gzip (cut off or damaged): step 02 quarantines it whole")
    results.record(
        f"{found:,} records landed, {duplicates} unexpected duplicates",
        records_landed=found,
        duplicate_records=duplicates,
        resent_records=resent,
        objects_landed=sum(landed.objects_per_partition.values()),
        **run,
    )


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "DeliveryStreamName", "RawPrefix")
    bucket, stream_name, raw_prefix = outputs["LabBucketName"], outputs["DeliveryStreamName"], outputs["RawPrefix"]
    s3 = client(session, "s3")

    console.heading(f"Generate {args.count:,} labelled transactions (seed {args.seed})")
    data = generate(args.count, seed=args.seed)
    console.done(f"{len(data.transactions):,} transactions, fraud rate {data.labels['is_fraud'].mean():.2%}")
    corrupted, sent_duplicates = corrupted_records(data.transactions, args.corrupt)
    batch = batch_id(args.count, args.seed)
    labels_key, log = f"labels/{batch}/labels.csv", AcceptedLog(batch)

    # What landed is the truth: a rerun after any failure sends exactly what is missing.
    landed = read_landed(s3, bucket, raw_prefix)
    ids = data.transactions["transaction_id"]
    in_flight = {tid for tid in log.ids() if tid not in landed.transaction_ids}
    if in_flight:
        window = log.modified() + buffer_seconds(session, stream_name) + 60 - time.time()
        landed = wait_for_in_flight(s3, bucket, raw_prefix, in_flight, max(window, 0))
    missing = ~ids.isin(landed.transaction_ids.keys()).to_numpy()
    labels_delivered = has_objects(s3, bucket, labels_key)
    first_run = bool(missing.all()) and not labels_delivered
    if not missing.any():
        console.heading("Stream: every record of this batch has landed already; nothing is resent")
    else:
        resumed = "" if first_run else f" ({missing.sum():,} not landed yet; {(~missing).sum():,} already landed are not resent)"
        console.heading(f"Stream to Firehose {stream_name}{resumed}")
        if first_run:
            console.note(f"plus {len(corrupted)} malformed records ({', '.join(KINDS)}), as real streams carry some")
        stream(session, stream_name, data.transactions[missing], args.batch_size, corrupted if first_run else [], log)
    if not labels_delivered:
        console.heading("Deliver labels (chargebacks) apart from the stream")
        deliver_labels(s3, bucket, labels_key, data.labels)

    console.heading(f"What landed in s3://{bucket}/{raw_prefix}")
    verify_landed(s3, bucket, raw_prefix, set(ids), sent_duplicates, args.wait, resent=0 if first_run else int(missing.sum()), seed=args.seed, count=args.count)
    log.clear()
    return 0


if __name__ == "__main__":
    run_step(main)
