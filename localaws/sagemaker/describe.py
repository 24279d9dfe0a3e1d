"""What Describe* and List* say of the jobs and pipeline executions the local AWS runs.

moto says Completed (or Succeeded) at once; the runners know the truth. Each function takes
moto's reply (a dict) and writes into it what SageMaker would report: the status, failure
reason, times and metrics of the job's run, and what is particular to its kind.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Callable

from localaws.sagemaker.jobs import JobState

# Each job kind's keys in Describe* and List* replies: (name, status, end time).
FIELDS = {
    "processing": ("ProcessingJobName", "ProcessingJobStatus", "ProcessingEndTime"),
    "training": ("TrainingJobName", "TrainingJobStatus", "TrainingEndTime"),
    "tuning": ("HyperParameterTuningJobName", "HyperParameterTuningJobStatus", "HyperParameterTuningEndTime"),
    "transform": ("TransformJobName", "TransformJobStatus", "TransformEndTime"),
}
DESCRIBE = {
    "DescribeProcessingJob": "processing",
    "DescribeTrainingJob": "training",
    "DescribeHyperParameterTuningJob": "tuning",
    "DescribeTransformJob": "transform",
}
# List* of run jobs: (kind, the reply's list of summaries).
LIST = {
    "ListProcessingJobs": ("processing", "ProcessingJobSummaries"),
    "ListTrainingJobs": ("training", "TrainingJobSummaries"),
    "ListHyperParameterTuningJobs": ("tuning", "HyperParameterTuningJobSummaries"),
}


def job(kind: str, described: dict[str, Any], state: JobState) -> None:
    """A Describe* reply of a `kind` job as its run went."""
    summary(kind, described, state)
    if state.failure_reason:
        described["FailureReason"] = state.failure_reason
    if state.final_metrics:
        described["FinalMetricDataList"] = [
            {**m, "Timestamp": m["Timestamp"].timestamp() if isinstance(m["Timestamp"], datetime) else m["Timestamp"]}
            for m in state.final_metrics
        ]
    KINDS[kind](described, state)


def summary(kind: str, listed: dict[str, Any], state: JobState) -> None:
    """One job's summary in a List* reply: its true status and end time."""
    _, status_key, end_key = FIELDS[kind]
    listed[status_key] = state.status
    if state.ended is None:
        listed.pop(end_key, None)
    else:
        listed[end_key] = state.ended.timestamp()


def processing(described: dict[str, Any], state: JobState) -> None:
    # moto drops ProcessingResources; SageMaker reports the request's
    described["ProcessingResources"] = state.spec.get("ProcessingResources", {})
    if started := state.entered("Processing"):
        described["ProcessingStartTime"] = started.timestamp()


def training(described: dict[str, Any], state: JobState) -> None:
    """What DescribeTrainingJob tells of a job's life: its secondary status transitions, when
    training started, seconds trained and billed, and the metrics its log is parsed for."""
    described["SecondaryStatus"] = "Stopping" if state.status == "Stopping" else state.transitions[-1]["Status"]
    described["SecondaryStatusTransitions"] = [
        {key: value.timestamp() if isinstance(value, datetime) else value for key, value in transition.items()}
        for transition in state.transitions
    ]
    started = state.entered("Downloading")  # the instances are up
    if started:
        described["TrainingStartTime"] = started.timestamp()
        if state.ended:
            # Billed per second of instance time; offline there is no spot discount to show.
            seconds = max(1, math.ceil((state.ended - started).total_seconds()))
            described["TrainingTimeInSeconds"] = described["BillableTimeInSeconds"] = seconds
    algorithm = described.setdefault("AlgorithmSpecification", {})
    requested = state.spec.get("AlgorithmSpecification", {}).get("MetricDefinitions")
    algorithm["MetricDefinitions"] = requested or builtin_metric_definitions(state.spec.get("HyperParameters", {}))


def tuning(described: dict[str, Any], state: JobState) -> None:
    """The children's end states and the best of them (moto invents a "FakeTrainingJobName")."""
    outcome = state.tuning
    if outcome is None:  # still training its children
        return
    described["TrainingJobStatusCounters"] = {
        "Completed": outcome.statuses.count("Completed"), "InProgress": 0, "RetryableError": 0,
        "NonRetryableError": outcome.statuses.count("Failed"), "Stopped": 0,
    }
    if outcome.best is not None:
        name, arn, tuned, value = outcome.best
        objective = state.spec["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        described["BestTrainingJob"] = {
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": tuned,
            "FinalHyperParameterTuningJobObjectiveMetric": {**objective, "Value": value},
            "CreationTime": state.started.timestamp(),
        }


def transform(described: dict[str, Any], state: JobState) -> None:
    if started := state.entered("Transforming"):
        described["TransformStartTime"] = started.timestamp()


KINDS: dict[str, Callable[[dict[str, Any], JobState], None]] = {
    "processing": processing, "training": training, "tuning": tuning, "transform": transform,
}


def pipeline_execution(described: dict[str, Any], execution: Any, reason_key: str) -> None:
    """A DescribePipelineExecution reply or a ListPipelineExecutions summary as the execution
    went (`reason_key`: the failure reason's name, which differs between the two)."""
    described["PipelineExecutionStatus"] = execution.status
    if execution.failure_reason:
        described[reason_key] = execution.failure_reason
    else:
        described.pop(reason_key, None)
    described["LastModifiedTime"] = (execution.ended or execution.started).timestamp()


def builtin_metric_definitions(hyperparameters: dict[str, str]) -> list[dict[str, str]]:
    """The metric definitions SageMaker gives the built-in XGBoost algorithm: each evaluation
    metric on each channel, parsed from the log line XGBoost prints per round
    (`[12]#011train-aucpr:0.91#011validation-aucpr:0.88`, #011 being the logged tab)."""
    metrics = [m for m in hyperparameters.get("eval_metric", "").split(",") if m] or ["rmse"]
    number = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
    return [
        {"Name": f"{channel}:{metric}", "Regex": rf".*\[[0-9]+\].*#011{channel}-{metric}:{number}.*"}
        for channel in ("train", "validation") for metric in metrics
    ]
