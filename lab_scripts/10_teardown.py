"""Step 10 — Teardown: delete what the steps created outside CloudFormation, then audit.

What you do: run `python lab_scripts/10_teardown.py`, then `npx cdk destroy --all` (add
`-c fraudlab:modelPackageArn=<arn>` so the endpoint and monitoring stacks are included),
then `python lab_scripts/10_teardown.py --audit-only` to prove nothing is left.
What you see: per role, the actions it was granted and those it used (IAM's last accessed
information, the console's Access Advisor); each deletion, in dependency order -- monitoring schedules before the
endpoints they watch, endpoints before their configs and models, running jobs stopped,
model package versions deleted (CloudFormation cannot delete a group that still has
versions), job log streams removed -- then an audit across S3, KMS, SageMaker, Firehose,
SNS, EventBridge Scheduler, CloudWatch, CloudWatch Logs, EC2 (VPC) and IAM. Resources
of stacks still deployed are listed for `cdk destroy`; anything else is a leftover and
the step exits 1. Completed jobs stay in SageMaker's history (they cost nothing), custom
CloudWatch metrics expire on their own (billed only while published).

Exam task statements: MLA-C01 3.2 (create and script infrastructure: tear down what IaC
built), 4.2 (monitor and optimize cost: find what keeps costing); MLS-C01 4.2 (cost-aware
choice of ML services and their life cycle).
"""
from __future__ import annotations

import argparse
import time

from botocore.exceptions import ClientError

from labkit import access_advisor, audit, console, polling, results
from labkit.cli import step_parser
from labkit.errors import run_step
from labkit.outputs import stack_prefix, stack_status
from labkit.session import aws_session, client, stacks_command

EXTRA_STACKS = ("Endpoint", "Monitoring")
JOB_LOG_GROUPS = ("/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TrainingJobs")


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--audit-only", action="store_true", help="only list what is left (e.g. after cdk destroy)")
    return parser.parse_args()


def deployed_stacks(session) -> list[str]:
    prefix = stack_prefix()
    names = [f"{prefix}-{s}" for s in ("Network", "Data", "MLPlatform", *EXTRA_STACKS)]
    return [n for n in names if stack_status(session, n) not in (None, "DELETE_COMPLETE")]


def teardown(session, outside: list[audit.Found]) -> set[audit.Found]:
    """Delete the leftovers outside any stack, dependents first; returns those that went.

    Running jobs are stopped (SageMaker keeps finished jobs in its history, at no cost).
    """
    sm = client(session, "sagemaker")
    by_kind = lambda kind: [f for f in outside if f.kind == kind]  # noqa: E731
    gone: set[audit.Found] = set()

    def attempt(item: audit.Found, call, label: str = "") -> bool:
        try:
            call()
        except ClientError as error:
            console.failed(f"{label or item.kind} {item.name}: {error.response['Error'].get('Message', error)}")
            return False
        console.done(f"deleted {label or item.kind} {item.name}")
        gone.add(item)
        return True

    for item in by_kind("monitoring schedule"):  # schedules before the endpoints they watch
        attempt(item, lambda: sm.delete_monitoring_schedule(MonitoringScheduleName=item.name))
    for item in by_kind("schedule"):
        attempt(item, lambda: client(session, "scheduler").delete_schedule(Name=item.name), "EventBridge schedule")
    for kind, stop, key in (
        ("running processing job", sm.stop_processing_job, "ProcessingJobName"),
        ("running training job", sm.stop_training_job, "TrainingJobName"),
        ("running tuning job", sm.stop_hyper_parameter_tuning_job, "HyperParameterTuningJobName"),
    ):
        for item in by_kind(kind):
            attempt(item, lambda: stop(**{key: item.name}), kind.replace("running", "stopped"))
    for item in by_kind("endpoint"):
        if attempt(item, lambda: sm.delete_endpoint(EndpointName=item.name)):
            wait_gone(lambda: sm.describe_endpoint(EndpointName=item.name))
    for item in by_kind("endpoint config"):
        attempt(item, lambda: sm.delete_endpoint_config(EndpointConfigName=item.name))
    for item in by_kind("model"):
        attempt(item, lambda: sm.delete_model(ModelName=item.name))
    for item in by_kind("model package"):
        attempt(item, lambda: sm.delete_model_package(ModelPackageName=item.arn))
    for item in by_kind("model package group"):
        attempt(item, lambda: sm.delete_model_package_group(ModelPackageGroupName=item.name))
    return gone


def delete_job_logs(session) -> int:
    """The lab's job log streams in SageMaker's shared groups (the groups are not the lab's)."""
    logs, count = client(session, "logs"), 0
    for group in JOB_LOG_GROUPS:
        try:
            pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=group, logStreamNamePrefix=audit.JOB_PREFIX)
            streams = [s["logStreamName"] for page in pages for s in page["logStreams"]]
        except logs.exceptions.ResourceNotFoundException:
            continue
        for stream in streams:
            logs.delete_log_stream(logGroupName=group, logStreamName=stream)
            count += 1
    if count:
        console.done(f"deleted {count} job log streams in {', '.join(JOB_LOG_GROUPS)}")
    return count


def wait_gone(describe, timeout: float = 900) -> None:
    started, waits = time.monotonic(), polling.intervals()
    while time.monotonic() - started < timeout:
        try:
            describe()
        except ClientError:
            return
        time.sleep(next(waits))


def show_role_use(session, roles: list[audit.Found]) -> None:
    console.heading("Least privilege: what each role was granted, and used (IAM last accessed)")
    iam = client(session, "iam")
    try:
        used = [access_advisor.role_use(iam, role.arn) for role in roles]
    except ClientError as error:  # the teardown must go on whatever this view says
        console.warn(f"IAM last accessed information not available: {error.response['Error']['Message']}")
        return
    console.table(
        [(u.role, f"granted {u.actions_granted} action{'' if u.actions_granted == 1 else 's'}, used {u.actions_used}", f"{u.services_used} of {u.services_granted}",
          ", ".join(u.unused_services) or "-") for u in used],
        ("role", "actions (tracked)", "services used", "services never used"),
    )
    console.note("a permission no step used is a candidate to remove; some are needed only on AWS (an image pull) or with a flag")


def main() -> int:
    args = parse_args()
    session = aws_session()
    stacks = deployed_stacks(session)
    in_stacks, leftovers = audit.audit(session, stack_prefix(), stacks)
    roles = [f for f in in_stacks if f.kind == "role"]
    if roles and not args.audit_only:  # before cdk destroy deletes them
        show_role_use(session, roles)
    if not args.audit_only:
        console.heading("Delete what the steps created outside CloudFormation")
        gone = teardown(session, leftovers)
        # Teardown touches nothing a stack owns: what is left is what it could not delete.
        leftovers = [f for f in leftovers if f not in gone]
        streams = delete_job_logs(session)
        if not gone and not streams:
            console.done("nothing to delete")

    console.heading(f"Audit: what is left of the lab in {session.region_name}")
    if in_stacks:
        console.note(f"{len(in_stacks)} resources belong to stacks still deployed: {', '.join(stacks)}")
        console.note(f"next: {stacks_command('destroy', 'fraudlab:modelPackageArn=<arn>')} (the ARN brings in the endpoint and monitoring stacks), then rerun with --audit-only")
    if leftovers:
        console.table([(f.service, f.kind, f.name) for f in leftovers], ("service", "kind", "left over"))
        console.failed(f"{len(leftovers)} leftovers outside any stack: delete them (console or CLI) or rerun this step")
    else:
        console.done("no leftovers outside the stacks" + ("" if in_stacks else ": the lab is gone"))
    results.record(
        f"{len(leftovers)} leftovers, {len(in_stacks)} resources in {len(stacks)} stacks",
        leftovers=len(leftovers), in_stacks=len(in_stacks),
    )
    return 1 if leftovers else 0


if __name__ == "__main__":
    run_step(main)
