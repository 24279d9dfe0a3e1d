"""Step 00 — Preflight: is everything in place before the lab spends anything?

What you do: run `python lab_scripts/00_preflight.py` after `cdk deploy --all` (or
`make local-up` and `source .localaws/env` to work offline).
What you see: one line per check (region, identity, each stack, the lab bucket, the
Firehose stream). A failed check says in one line what to do, and the step exits 1.

Exam task statements: MLA-C01 4.3 (secure AWS resources: who am I, which role, least
privilege), MLS-C01 1.1 (data repositories: where the lab's data will live).
"""
from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from labkit import console, cost, results
from labkit.cli import step_parser
from labkit.errors import LabError, explain, run_step
from labkit.outputs import lab_outputs, stack_names, stack_status
from labkit.session import aws_session, backend_description, client, endpoint_url, stacks_command


def check_identity(session: boto3.Session) -> None:
    identity = client(session, "sts").get_caller_identity()
    console.done(f"identity {identity['Arn']} in region {session.region_name} ({backend_description()})")


def check_stacks(session: boto3.Session) -> bool:
    ok = True
    for name in stack_names():
        status = stack_status(session, name)
        if status is None:
            console.failed(f"stack {name} is not deployed: run `{stacks_command('deploy')}`")
            ok = False
        elif status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            console.done(f"stack {name} {status}")
        else:
            console.failed(f"stack {name} is {status}: see its events in the CloudFormation console, then redeploy")
            ok = False
    return ok


def check_bucket(session: boto3.Session, bucket: str, raw_prefix: str) -> None:
    s3 = client(session, "s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        raise LabError(f"bucket {bucket} is not reachable ({code}): redeploy with `{stacks_command('deploy')}`") from None
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=raw_prefix, MaxKeys=1000)
    console.done(f"bucket s3://{bucket} reachable ({listed.get('KeyCount', 0)} objects under {raw_prefix} so far)")


def check_stream(session: boto3.Session, stream: str) -> None:
    description = client(session, "firehose").describe_delivery_stream(DeliveryStreamName=stream)
    status = description["DeliveryStreamDescription"]["DeliveryStreamStatus"]
    if status != "ACTIVE":
        raise LabError(f"Firehose stream {stream} is {status}: wait a minute and rerun this step")
    console.done(f"Firehose stream {stream} ACTIVE")


def show_cost(region: str) -> dict[str, float]:
    """What the lab costs here (list prices in labkit/prices.json; `make cost` for the table)."""
    try:
        items = cost.estimate(cost.load_settings(), cost.load_prices(region))
    except cost.CostError as error:
        console.note(f"cost estimate unavailable: {error}")
        return {}
    total = cost.totals(items, hours_forgotten=24)
    console.note(
        f"cost in {region}: about USD {total.lab_run:.2f} for one full lab run; USD {total.forgotten:.2f} per day "
        "if you forget teardown (step 10). `make cost` shows every line."
    )
    return {"lab_run_usd": round(total.lab_run, 2), "forgotten_usd_per_day": round(total.forgotten, 2)}


def main() -> int:
    step_parser(__doc__).parse_args()  # no options: --help shows what the step does
    console.heading("Preflight")
    session = aws_session()
    check_identity(session)
    if not check_stacks(session):
        return 1
    roles = [f"{kind}RoleArn" for kind in ("Processing", "Training", "Serving", "Monitoring")]
    outputs = lab_outputs(session, "LabBucketName", "DeliveryStreamName", "RawPrefix", *roles)
    failures = 0
    for check, args in (
        (check_bucket, (outputs["LabBucketName"], outputs["RawPrefix"])),
        (check_stream, (outputs["DeliveryStreamName"],)),
    ):
        try:
            check(session, *args)
        except Exception as error:  # noqa: BLE001 - report each independent check
            message = explain(error) or f"{check.__name__.removeprefix('check_')}: {error}"
            console.failed(message)
            failures += 1
    if failures:
        return 1
    console.done("ready: each kind of SageMaker job runs as its own role, reaching only its own data:")
    for role in roles:
        console.note(f"{role.removesuffix('RoleArn').lower():<10} {outputs[role].split('/')[-1]}")
    costs = show_cost(session.region_name)
    results.record(
        f"{len(stack_names())} stacks ready in {session.region_name}",
        region=session.region_name, backend=backend_description(), endpoint_url=endpoint_url(),
        bucket=outputs["LabBucketName"], **costs,
    )
    return 0


if __name__ == "__main__":
    run_step(main)
