"""Following a SageMaker Pipeline execution as Studio shows it: step 07 starts one, step 08
watches the one the drift alarm starts."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from labkit import console, polling
from labkit.errors import LabError
from labkit.sagemaker import approve_command, split_uri
from labkit.session import each

DONE = ("Succeeded", "Failed", "Stopped")
TIMEOUT_SECONDS = 2 * 3600
GATE_FAILED = "GateFailed"  # the Fail step of stacks/pipeline_definition.py


def follow(sagemaker, arn: str, timeout_seconds: float = TIMEOUT_SECONDS) -> tuple[dict, list[dict]]:
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
        if time.monotonic() - started > timeout_seconds:
            raise LabError(f"{arn} still {execution['PipelineExecutionStatus']} after {timeout_seconds:.0f} s: see SageMaker Studio > Pipelines")
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
    """(step, status, started, took, ran / decided) per step, oldest first."""
    rows = []
    for step in steps:
        start = datetime.fromtimestamp(step["StartTime"].timestamp(), timezone.utc)
        seconds = (step["EndTime"] - step["StartTime"]).total_seconds() if step.get("EndTime") else None
        rows.append((step["StepName"], step["StepStatus"], start.strftime("%H:%M:%S"), f"{seconds:.1f} s" if seconds is not None else "-", detail(step)))
    return rows


def evaluation_output(sagemaker, steps: list[dict], output: str) -> str | None:
    """The S3 URI of one output ("evaluation", "serving") of the Evaluate step, if it succeeded."""
    evaluate = next((s for s in steps if s["StepName"] == "Evaluate" and s["StepStatus"] == "Succeeded"), None)
    if evaluate is None:
        return None
    job = sagemaker.describe_processing_job(ProcessingJobName=evaluate["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1])
    return next(o for o in job["ProcessingOutputConfig"]["Outputs"] if o["OutputName"] == output)["S3Output"]["S3Uri"].rstrip("/")


def gate_figures(sagemaker, s3, steps: list[dict]) -> dict | None:
    """evaluation.json's gate, read from the Evaluate step's output (cached or not)."""
    uri = evaluation_output(sagemaker, steps, "evaluation")
    if uri is None:
        return None
    bucket, key = split_uri(f"{uri}/evaluation.json")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["gate"]


def last_trained_archive(sagemaker, pipeline: str) -> tuple[str, str] | None:
    """(serving model.tar.gz URI, execution id) of the newest execution whose Evaluate step
    succeeded, registered or not."""
    executions = sorted(each(sagemaker, "list_pipeline_executions", "PipelineExecutionSummaries", PipelineName=pipeline),
                        key=lambda e: e["StartTime"], reverse=True)
    for execution in executions:
        arn = execution["PipelineExecutionArn"]
        steps = list(each(sagemaker, "list_pipeline_execution_steps", "PipelineExecutionSteps", PipelineExecutionArn=arn))
        uri = evaluation_output(sagemaker, steps, "serving")
        if uri is not None:
            return f"{uri}/model.tar.gz", arn.rsplit("/", 1)[-1]
    return None


def show_execution(sagemaker, s3, execution: dict, steps: list[dict], seconds: float, margin: float | None) -> dict:
    """The step list, the gate's figures and the outcome; a failed job step is a LabError
    (a gate that refuses the model is an outcome, not a failure)."""
    arn = execution["PipelineExecutionArn"]
    console.heading(f"Execution {arn.rsplit('/', 1)[-1]}: {execution['PipelineExecutionStatus']} in {seconds:.1f} s")
    console.table(step_table(steps), ("step", "status", "started", "took", "ran / decided"))
    gate = gate_figures(sagemaker, s3, steps)
    if gate is not None:
        against = f" vs margin {margin:g}" if margin is not None else ""
        console.note(f"gate: PR-AUC {gate['pr_auc']:.3f}, the amount rule's {gate['rule_pr_auc']:.3f}: lift {gate['pr_auc_lift']:.3f}{against}")
    cached = [s["StepName"] for s in steps if s.get("CacheHitResult")]
    if cached:
        console.note(f"from the cache: {', '.join(cached)} (same data, code and arguments within the hour)")
    failed = [s for s in steps if s["StepStatus"] == "Failed" and s["StepName"] != GATE_FAILED]
    if failed:
        raise LabError(f"pipeline step {failed[0]['StepName']} failed: {failed[0].get('FailureReason', 'no reason given')}")
    by_name = {s["StepName"]: s for s in steps}
    package, status = "", "not registered"
    if "Register" in by_name:
        package = by_name["Register"]["Metadata"]["RegisterModel"]["Arn"]
        status = sagemaker.describe_model_package(ModelPackageName=package)["ModelApprovalStatus"]
        console.done(f"registered {package}: {status}")
        if status != "Approved":
            console.note(f"a person reviews it before it serves: `{approve_command(package)}`")
    elif GATE_FAILED in by_name:
        console.warn(f"the gate refused the model: {by_name[GATE_FAILED]['Metadata']['Fail']['ErrorMessage']}")
    return {
        "execution_arn": arn,
        "execution_status": execution["PipelineExecutionStatus"],
        "execution_seconds": seconds,
        "steps": [{"step": name, "status": s, "started": started, "took": took, "detail": d} for name, s, started, took, d in step_table(steps)],
        "cached_steps": cached,
        "gate": gate or {},
        "model_package_arn": package,
        "approval": status,
    }
