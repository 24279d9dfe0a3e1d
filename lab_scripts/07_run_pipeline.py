"""Step 07 — Retrain with the SageMaker Pipeline: steps 02-04 as one execution.

What you do: run `python lab_scripts/07_run_pipeline.py [--margin 0.10] [--approval-status
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
import time
import uuid
from datetime import datetime, timezone

from labkit import console, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.landed import has_objects
from labkit.outputs import lab_outputs
from labkit.pipelines import follow, show_execution
from labkit.sagemaker import ROOT
from labkit.session import aws_session, client, each
from stacks.layout import LABELS_PREFIX
from stacks.pipeline_definition import CODE_PREFIX, EVALUATION_CODE, PROCESSING_CODE



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
        PipelineExecutionDisplayName=f"step07-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}",
        PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
        ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    console.done(arn)
    clock = time.monotonic()
    execution, steps = follow(sagemaker, arn)
    outcome = show_execution(sagemaker, s3, execution, steps, time.monotonic() - clock, args.margin)
    results.record(
        f"pipeline {outcome['execution_status']} in {outcome['execution_seconds']:.0f} s, {len(steps)} steps "
        f"({len(outcome['cached_steps'])} cached), model {outcome['approval']}",
        **outcome,
    )
    return 0


if __name__ == "__main__":
    run_step(main)
