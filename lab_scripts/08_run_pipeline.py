"""Step 08 — Retrain with the SageMaker Pipeline: steps 02-04 as one execution.

What you do: run `python lab_scripts/08_run_pipeline.py [--margin 0.10] [--approval-status
PendingManualApproval] [--alerts-per-day 100]`.
What you see: the jobs' code uploaded; an execution of the lab's training pipeline started
with its parameters (DataVersion: a fingerprint of the landed data); each step as it
starts and ends; then the step list as SageMaker Studio shows it (status, start, duration,
the job it ran, the gate's outcome, cache hits); the gate's figures from the evaluation
step's evaluation.json; and either the registered model package (PendingManualApproval
by default: a person approves what an automated retrain produced) or the Fail step's
reason. Run it again on the same data: Features, Train and Evaluate come from the cache
and only the gate decides anew (add --margin 0.9 to watch the gate refuse the model).

Where to look: SageMaker Studio > Pipelines > <stack prefix>-MLPlatform-training >
Executions (graph, step list, parameters); the model registry for the new version.

Exam task statements: MLA-C01 3.3 (automated orchestration: SageMaker Pipelines, caching,
conditions), 3.1 (choosing the orchestrator), 2.2 (model registry, approval), 2.3 (the
evaluation gate); MLS-C01 4.4 (deploy and operationalize ML solutions).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
import uuid
from datetime import datetime, timezone

from labkit import console, polling, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.landed import has_objects
from labkit.outputs import lab_outputs
from labkit.sagemaker import ROOT, approve_command, split_uri
from labkit.session import aws_session, client, each
from stacks.layout import LABELS_PREFIX
from stacks.pipeline_definition import CODE_PREFIX, EVALUATION_CODE, PROCESSING_CODE

DONE = ("Succeeded", "Failed", "Stopped")
TIMEOUT_SECONDS = 2 * 3600


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--margin", type=float, default=0.10, help="PR-AUC the model must add over the amount rule to be registered")
    parser.add_argument("--approval-status", choices=("PendingManualApproval", "Approved"), default="PendingManualApproval",
                        help="status of a model that passes the gate (Approved deploys without a review: not for production)")
    parser.add_argument("--alerts-per-day", type=int, default=100, help="cards investigators can review a day (the alert budget)")
    args = parser.parse_args()
    if args.alerts_per_day < 1:
        parser.error("--alerts-per-day must be at least 1")
    return args


def upload_pipeline_code(s3, bucket: str) -> int:
    """The Processing steps' code, flat under code/pipeline/ where the definition points."""
    files = {name: ROOT / "processing" / name for name in PROCESSING_CODE + EVALUATION_CODE if name != "inference.py"}
    files["inference.py"] = ROOT / "inference" / "inference.py"
    for name, path in files.items():
        s3.upload_file(str(path), bucket, f"{CODE_PREFIX}{name}")
    return len(files)


def data_version(s3, bucket: str, prefixes: list[str]) -> str:
    """A fingerprint of the landed data (every object's key, size and ETag): the same data
    gives the same DataVersion, so the cached features step is reused only for it."""
    digest = hashlib.sha256()
    for prefix in prefixes:
        for item in each(s3, "list_objects_v2", "Contents", Bucket=bucket, Prefix=prefix):
            digest.update(f"{item['Key']} {item['Size']} {item['ETag']}\n".encode())
    return digest.hexdigest()[:16]


def follow(sagemaker, arn: str) -> tuple[dict, list[dict]]:
    """Poll the execution, saying when each step starts and ends, until it settles."""
    started, seen, told, waits = time.monotonic(), {}, time.monotonic(), polling.intervals()
    while True:
        execution = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        steps = list(each(sagemaker, "list_pipeline_execution_steps", "PipelineExecutionSteps", PipelineExecutionArn=arn, SortOrder="Ascending"))
        for step in steps:
            shown = step["StepStatus"] + (" (from cache)" if step.get("CacheHitResult") else "")
            if seen.get(step["StepName"]) != shown:
                console.note(f"{step['StepName']}: {shown} after {time.monotonic() - started:.0f} s")
                seen[step["StepName"]], told = shown, time.monotonic()
        if execution["PipelineExecutionStatus"] in DONE:
            return execution, steps
        if time.monotonic() - told >= polling.PROGRESS_SECONDS:
            console.note(f"execution still {execution['PipelineExecutionStatus']} after {time.monotonic() - started:.0f} s")
            told = time.monotonic()
        if time.monotonic() - started > TIMEOUT_SECONDS:
            raise LabError(f"{arn} still {execution['PipelineExecutionStatus']} after {TIMEOUT_SECONDS} s: see it in SageMaker Studio > Pipelines")
        time.sleep(next(waits))


def detail(step: dict) -> str:
    """What the step ran or decided, as the console's step details show it."""
    metadata = step.get("Metadata", {})
    if "Condition" in metadata:
        return f"outcome {metadata['Condition']['Outcome']}"
    if "Fail" in metadata:
        return metadata["Fail"]["ErrorMessage"]
    for kind in ("ProcessingJob", "TrainingJob", "RegisterModel"):
        if kind in metadata:
            where = metadata[kind]["Arn"].split("/", 1)[-1]
            if step.get("CacheHitResult"):
                where += f" (cached from execution {step['CacheHitResult']['SourcePipelineExecutionArn'].rsplit('/', 1)[-1]})"
            return where
    return step.get("FailureReason", "")


def step_table(steps: list[dict]) -> list[tuple]:
    rows = []
    for step in steps:
        start = datetime.fromtimestamp(step["StartTime"].timestamp(), timezone.utc)
        seconds = (step["EndTime"] - step["StartTime"]).total_seconds() if step.get("EndTime") else None
        rows.append((step["StepName"], step["StepStatus"], start.strftime("%H:%M:%S"), f"{seconds:.1f} s" if seconds is not None else "-", detail(step)))
    return rows


def gate_figures(sagemaker, s3, steps: list[dict]) -> dict | None:
    """evaluation.json's gate, read from the Evaluate step's output (cached or not)."""
    evaluate = next((s for s in steps if s["StepName"] == "Evaluate" and s["StepStatus"] == "Succeeded"), None)
    if evaluate is None:
        return None
    job = sagemaker.describe_processing_job(ProcessingJobName=evaluate["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1])
    output = next(o for o in job["ProcessingOutputConfig"]["Outputs"] if o["OutputName"] == "evaluation")
    bucket, key = split_uri(f"{output['S3Output']['S3Uri'].rstrip('/')}/evaluation.json")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["gate"]


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "RawPrefix", "PipelineName")
    bucket, s3, sagemaker = outputs["LabBucketName"], client(session, "s3"), client(session, "sagemaker")
    for prefix, what in ((outputs["RawPrefix"], "no transactions"), (LABELS_PREFIX, "no labels")):
        if not has_objects(s3, bucket, prefix):
            raise LabError(f"{what} under s3://{bucket}/{prefix}: run lab_scripts/01_stream_transactions.py first")

    console.heading("Upload the pipeline's code")
    console.done(f"{upload_pipeline_code(s3, bucket)} files at s3://{bucket}/{CODE_PREFIX}")

    version = data_version(s3, bucket, [outputs["RawPrefix"], LABELS_PREFIX])
    parameters = {
        "DataVersion": version,
        "Margin": f"{args.margin:g}",
        "ModelApprovalStatus": args.approval_status,
        "AlertsPerDay": str(args.alerts_per_day),
    }
    console.heading(f"Start {outputs['PipelineName']}")
    console.table(sorted(parameters.items()), ("parameter", "value"))
    arn = sagemaker.start_pipeline_execution(
        PipelineName=outputs["PipelineName"],
        PipelineExecutionDisplayName=f"step08-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}",
        PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
        ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    console.done(arn)
    clock = time.monotonic()
    execution, steps = follow(sagemaker, arn)
    seconds = time.monotonic() - clock

    console.heading(f"Execution {arn.rsplit('/', 1)[-1]}: {execution['PipelineExecutionStatus']} in {seconds:.1f} s")
    console.table(step_table(steps), ("step", "status", "started", "took", "ran / decided"))
    gate = gate_figures(sagemaker, s3, steps)
    if gate is not None:
        console.note(f"gate: PR-AUC {gate['pr_auc']:.3f}, the amount rule's {gate['rule_pr_auc']:.3f}: lift {gate['pr_auc_lift']:.3f} vs margin {args.margin:g}")
    by_name = {s["StepName"]: s for s in steps}
    cached = [s["StepName"] for s in steps if s.get("CacheHitResult")]
    if cached:
        console.note(f"from the cache: {', '.join(cached)} (same data, code and arguments within the hour)")
    failed = [s for s in steps if s["StepStatus"] == "Failed" and s["StepName"] != "GateFailed"]
    if failed:
        raise LabError(f"pipeline step {failed[0]['StepName']} failed: {failed[0].get('FailureReason', 'no reason given')}")
    package, status = None, "not registered"
    if "Register" in by_name:
        package = by_name["Register"]["Metadata"]["RegisterModel"]["Arn"]
        status = sagemaker.describe_model_package(ModelPackageName=package)["ModelApprovalStatus"]
        console.done(f"registered {package}: {status}")
        if status != "Approved":
            console.note(f"a person reviews it before it serves: `{approve_command(package)}`")
    elif "GateFailed" in by_name:
        console.warn(f"the gate refused the model: {by_name['GateFailed']['Metadata']['Fail']['ErrorMessage']}")
    results.record(
        f"pipeline {execution['PipelineExecutionStatus']} in {seconds:.0f} s, {len(steps)} steps ({len(cached)} cached), model {status}",
        execution_arn=arn,
        execution_status=execution["PipelineExecutionStatus"],
        execution_seconds=seconds,
        steps=[{"step": name, "status": s, "started": started, "took": took, "detail": d} for name, s, started, took, d in step_table(steps)],
        cached_steps=cached,
        gate=gate or {},
        model_package_arn=package or "",
        approval=status,
    )
    return 0


if __name__ == "__main__":
    run_step(main)
