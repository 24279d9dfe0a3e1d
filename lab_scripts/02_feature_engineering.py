"""Step 02 — Feature engineering with a SageMaker Processing job.

What you do: run `python lab_scripts/02_feature_engineering.py [--instances N] [--rerun]`;
`--without kms` runs the job as a copy of its role without the lab key's statement instead:
it fails with the AccessDenied a missing permission gives, and the step shows how to read it.
What you see: the job's code uploaded to S3, a Processing job started in the isolated VPC
(network isolation on, volumes and outputs encrypted with the lab key), its status until
it completes; then what it produced: train/validation/test periods split by time with a
gap of one label delay before validation and before test (a chargeback takes up to
--label-delay-days to arrive: validation starts once every training label is known), only
payments whose label is final (older than the delay), CSV with the label first and no
header (the built-in XGBoost format), the feature schema, the drift baseline,
and every quarantine reason with its count: bad JSON, missing fields, wrong types,
negative amounts, future timestamps, conflicting duplicates, unreadable objects (a cut-off
gzip is quarantined whole, with what could be salvaged), bad, conflicting or orphan labels;
identical copies (a resent batch) are kept once and only counted. Bad data never fails the
job. A completed job is reused unless you pass --rerun.

Where to look: SageMaker console > Processing > Processing jobs > fraudlab-features-*;
CloudWatch Logs /aws/sagemaker/ProcessingJobs; S3 features/ and quarantine/.

Exam task statements: MLA-C01 1.2 (transform data and perform feature engineering),
1.3 (data quality: validate, handle corrupt records, avoid leakage with a time split),
MLS-C01 1.3 (data transformation jobs), 2.1 (sanitize and prepare data), 2.2 (feature
engineering: log transform, one-hot encoding, aggregates over time windows).
"""
from __future__ import annotations

import argparse
import json

from labkit import console, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.landed import has_objects
from labkit.outputs import lab_outputs
from labkit.role_copy import REMOVABLE, create_when_visible, role_without
from labkit.sagemaker import (
    CONTAINER,
    ROOT,
    feature_schema,
    isolated_processing_job,
    job_name,
    read_pointer,
    s3_input,
    upload_code,
    wait_for_job,
    write_pointer,
)
from labkit.session import aws_session, client
from processing.features import LABEL_DELAY_DAYS
from stacks.pipeline_definition import PROCESSING_CODE  # the files the job runs, as the pipeline's Features step runs them

POINTER = "features/latest.json"


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--instances", type=int, default=1, help="processing hosts (1-4)")
    parser.add_argument("--instance-type", default="ml.m5.xlarge", help="processing instance type (SageMaker Processing pricing applies)")
    parser.add_argument("--rerun", action="store_true", help="run a new job even if one completed before")
    parser.add_argument("--without", choices=sorted(REMOVABLE),
                        help="run the job as a copy of the Processing role without this permission, to see the AccessDenied it gives")
    parser.add_argument("--label-delay-days", type=float, default=LABEL_DELAY_DAYS, help=f"the data's longest chargeback delay (step 01's data: {LABEL_DELAY_DAYS})")
    args = parser.parse_args()
    if args.label_delay_days <= 0:
        parser.error("--label-delay-days must be positive")
    if not 1 <= args.instances <= 4:
        parser.error("--instances must be 1-4")
    return args


def processing_request(name: str, args, outputs: dict[str, str], code_uri: str) -> dict:
    bucket = outputs["LabBucketName"]
    # Every host needs every customer's history (see processing/feature_job.py): s3_input
    # gives each host all of an input (FullyReplicated).
    return isolated_processing_job(
        name,
        outputs,
        role="Processing",
        script="feature_job.py",
        arguments=["--raw", f"{CONTAINER}/input/raw", "--labels", f"{CONTAINER}/input/labels", "--label-delay-days", f"{args.label_delay_days:g}"],
        inputs=[
            s3_input("code", code_uri, f"{CONTAINER}/input/code"),
            s3_input("raw", f"s3://{bucket}/{outputs['RawPrefix']}", f"{CONTAINER}/input/raw"),
            s3_input("labels", f"s3://{bucket}/labels/", f"{CONTAINER}/input/labels"),
        ],
        results={
            "features": (f"s3://{bucket}/features/{name}", f"{CONTAINER}/output/features"),
            "quarantine": (f"s3://{bucket}/quarantine/{name}", f"{CONTAINER}/output/quarantine"),
        },
        instance_type=args.instance_type,
        instance_count=args.instances,
        volume_gb=30,
        max_runtime_seconds=3600,
    )


def show_results(s3, bucket: str, name: str) -> dict:
    schema = feature_schema(s3, bucket, name)
    quarantined = json.loads(s3.get_object(Bucket=bucket, Key=f"quarantine/{name}/counts.json")["Body"].read())
    rows = schema["rows"]
    console.done(
        f"{rows['read']:,} records read, {rows['valid']:,} valid, {rows['labelled']:,} with a known label"
        f" ({rows.get('labels_not_yet_known', 0):,} labels not available yet at the job's as-of)"
    )
    periods = schema["split"]["periods"]
    ends = {"train": periods["gap_1"], "validation": periods["gap_2"], "test": periods["maturing"]}
    console.table(
        [(split, f"{periods[split][:16]} to {ends[split][:16]}", f"{c['rows']:,}", f"{c['fraud']:,}", f"{c['fraud'] / max(c['rows'], 1):.2%}")
         for split, c in schema["splits"].items()],
        ("split", "period (UTC)", "rows", "fraud", "fraud rate"),
    )
    console.note(
        f"label delay {schema['label_delay_days']:g} days: {rows['gap_history_only']:,} payments in the two {schema['gap_days']:g}-day gaps and "
        f"{rows['maturing_history_only']:,} too recent for a final label (after {periods['maturing'][:16]}) are history only"
    )
    if rows["late_labels"]:
        console.warn(f"{rows['late_labels']:,} labels arrived more than {schema['label_delay_days']:g} days after their payment: rerun with a larger --label-delay-days")
    console.note(f"{len(schema['features'])} features; terminal fraud rates end {schema['label_delay_days']:g} days before each payment (label delay)")
    console.note(f"{quarantined_total(quarantined):,} quarantined (records, labels, objects); every reason, even at 0:")
    console.table(
        [(reason, f"{count:,}", UNIT.get(reason, "records"), where(name, reason, count)) for reason, count in quarantined.items()],
        ("reason", "count", "of", "kept in"),
    )
    return schema


# Counted in something else than records, or kept rather than quarantined.
UNIT = {"corrupt_object": "objects", "label_bad_file": "label files"}
KEPT_ONCE = ("duplicate", "label_duplicate")


def where(name: str, reason: str, count: int) -> str:
    if reason in KEPT_ONCE:
        return "kept once (identical copies)"
    return f"quarantine/{name}/{reason}.jsonl" if count else "-"


def quarantined_total(counts: dict[str, int]) -> int:
    return sum(count for reason, count in counts.items() if reason not in KEPT_ONCE)


def without_permission(session, args, outputs: dict[str, str]) -> int:
    """The feature job as a copy of its role minus one statement: it fails, and the failure
    says who was refused what."""
    s3, sagemaker, iam = client(session, "s3"), client(session, "sagemaker"), client(session, "iam")
    bucket = outputs["LabBucketName"]
    code_uri = upload_code(s3, bucket, ROOT / "processing", PROCESSING_CODE)
    with role_without(iam, outputs["ProcessingRoleArn"], args.without) as (role_arn, removed):
        console.heading(f"Processing job as {role_arn.rsplit('/', 1)[1]}: the Processing role without {', '.join(s['Sid'] for s in removed)}")
        for statement in removed:
            console.note(f"left out: {statement['Sid']}: {', '.join(statement['Action'] if isinstance(statement['Action'], list) else [statement['Action']])}")
        name = job_name(f"fraudlab-without-{args.without}")
        create_when_visible(lambda: sagemaker.create_processing_job(**processing_request(name, args, {**outputs, "ProcessingRoleArn": role_arn}, code_uri)))
        try:
            wait_for_job(lambda n: sagemaker.describe_processing_job(ProcessingJobName=n), name, "ProcessingJobStatus")
        except LabError as error:
            reason = str(error)
        else:
            raise LabError(f"{name} completed without {args.without}: the role must not need it, or the denial did not happen")
    console.failed(reason)
    console.heading("How to read it")
    console.note("User: arn:aws:sts::<account>:assumed-role/<role>/SageMaker is the job's execution role, in a session SageMaker opened:")
    console.note("  the job does not run as you, and your own permissions do not count (the exam trap: the identity that runs the job is not yours)")
    console.note("not authorized to perform: <action> on resource: <ARN> names what was missing; an S3 read of an SSE-KMS object also needs kms:Decrypt")
    console.note("where to fix it: the role's statements in stacks/ml_platform_stack.py (_execution_statements, UseLabKey), then cdk deploy")
    console.done("the copy of the role is deleted; the lab's own role is unchanged")
    return 0


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "RawPrefix", "ProcessingRoleArn", "KeyArn", "SubnetIds", "SecurityGroupId", "XgboostImageUri")
    bucket, s3, sagemaker = outputs["LabBucketName"], client(session, "s3"), client(session, "sagemaker")
    if args.without:
        return without_permission(session, args, outputs)

    previous = read_pointer(s3, bucket, POINTER)
    if previous and not args.rerun:
        name = previous["job"]
        console.heading(f"Features: reusing {name} (pass --rerun for a new job)")
    else:
        for prefix, what in ((outputs["RawPrefix"], "no transactions"), ("labels/", "no labels")):
            if not has_objects(s3, bucket, prefix):
                raise LabError(f"{what} under s3://{bucket}/{prefix}: run lab_scripts/01_stream_transactions.py first")
        console.heading("Upload the job's code")
        code_uri = upload_code(s3, bucket, ROOT / "processing", PROCESSING_CODE)
        console.done(code_uri)
        name = job_name("fraudlab-features")
        console.heading(f"Processing job {name} ({args.instances} x {args.instance_type}, network isolation on)")
        sagemaker.create_processing_job(**processing_request(name, args, outputs, code_uri))
        wait_for_job(lambda n: sagemaker.describe_processing_job(ProcessingJobName=n), name, "ProcessingJobStatus")
        write_pointer(s3, bucket, POINTER, {"job": name, "uri": f"s3://{bucket}/features/{name}"})

    console.heading(f"What the job wrote to s3://{bucket}/features/{name}/")
    schema = show_results(s3, bucket, name)
    train, quarantined = schema["splits"]["train"], quarantined_total(schema["rows"]["quarantined"])
    results.record(
        f"{train['rows']:,} training rows, {quarantined} records quarantined",
        training_rows=train["rows"],
        quarantined_records=quarantined,
    )
    return 0


if __name__ == "__main__":
    run_step(main)
