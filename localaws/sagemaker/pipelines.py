"""SageMaker Pipelines, executed: moto records pipelines and executions and calls every
execution Succeeded at once; here each execution runs its definition.

What runs, as SageMaker documents it (developer guide, "Pipelines": steps, properties,
conditions, caching):
- parameters: the definition's defaults, overridden by StartPipelineExecution's;
- values: `Get` of Parameters.*, Execution.* variables and Steps.<name>.<property path>
  (the step's Describe* reply: ProcessingOutputConfig.Outputs['features'].S3Output.S3Uri,
  ModelArtifacts.S3ModelArtifacts ...), `Std:Join`, and `Std:JsonGet` on a step's
  property file (read from the step's output in S3 when a later step needs it);
- order: DependsOn and every step a step's arguments refer to; one step at a time (the
  definitions here are chains; SageMaker would run independent steps side by side);
- Processing and Training steps create their job through the local AWS, so the job
  runners run them exactly as a numbered step's job; RegisterModel calls
  CreateModelPackage; Condition evaluates its conditions and runs IfSteps or ElseSteps;
  Fail ends the execution Failed with its ErrorMessage;
- caching (CacheConfig): a step reuses a Succeeded run of the same pipeline's same step
  whose cache key (SageMaker's "default cache key attributes") matches, within ExpireAfter;
- ListPipelineExecutionSteps: each step's status, times, failure reason, metadata (job
  ARN, condition outcome, package ARN, error message) and cache hit.
"""
from __future__ import annotations

import json
import random
import re
import string
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from localaws.clients import ClientSource
from localaws.iam.authorizer import RoleNotAssumable
from localaws.s3 import read_object
from localaws.sagemaker.jobs import JobRunner
from localaws.sagemaker.pipeline_definition import all_steps, duration, in_dependency_order, parameter_values

# What a step's cache key is made of (SageMaker developer guide, "Default cache key attributes by pipeline step type").
CACHE_KEYS = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": ("AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations", "Environment", "HyperParameters", "InputDataConfig"),
}
STEP_FAILURE = "Step failure: One or multiple steps failed."
PATH_TOKEN = re.compile(r"\.?([A-Za-z0-9_]+)|\[(\d+)\]|\['([^']*)'\]")


class StepFailed(Exception):
    """The step failed; str() is its FailureReason."""


def walk(document: Any, path: str) -> Any:
    """A property path (`ProcessingOutputConfig.Outputs['features'].S3Output.S3Uri`,
    `gate.pr_auc_lift`, `a[0].b`) in a Describe* reply or a property file. A list indexed
    by a name finds the item whose *Name field has it (Outputs['features'])."""
    position, value = 0, document
    while position < len(path):
        token = PATH_TOKEN.match(path, position)
        if token is None:
            raise KeyError(f"cannot parse {path!r} at {path[position:]!r}")
        position = token.end()
        key, index, name = token.groups()
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        elif name is not None and isinstance(value, list):
            value = next((item for item in value if any(k.endswith("Name") and v == name for k, v in item.items())), None)
            if value is None:
                raise KeyError(f"{path}: no item named {name!r}")
        else:
            raise KeyError(f"{path}: nothing at {token.group(0).lstrip('.')!r}")
    return value


@dataclass
class StepRun:
    name: str
    type: str
    display_name: str | None = None
    description: str | None = None
    status: str = "Executing"
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ended: datetime | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None
    cache_source: str | None = None

    def summary(self) -> dict[str, Any]:
        """One PipelineExecutionStep of ListPipelineExecutionSteps."""
        summary = {"StepName": self.name, "StartTime": self.started.timestamp(), "StepStatus": self.status,
                   "AttemptCount": 1, "Metadata": self.metadata}
        summary.update({k: v for k, v in (("StepDisplayName", self.display_name), ("StepDescription", self.description),
                                          ("FailureReason", self.failure_reason)) if v})
        if self.ended:
            summary["EndTime"] = self.ended.timestamp()
        if self.cache_source:
            summary["CacheHitResult"] = {"SourcePipelineExecutionArn": self.cache_source}
        return summary


@dataclass
class Execution:
    arn: str
    pipeline_name: str
    pipeline_arn: str
    definition: dict
    parameters: dict[str, Any]
    status: str = "Executing"
    failure_reason: str | None = None
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ended: datetime | None = None
    steps: dict[str, StepRun] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    role_arn: str = ""  # the pipeline's role, which the run acts as

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


class PipelineRunner:
    """Runs pipeline executions in background threads against the local AWS."""

    def __init__(self, session_factory: Callable[[], ClientSource], jobs: JobRunner,
                 as_role: Callable[[str], tuple[ClientSource, dict[str, str]]]) -> None:
        # SageMaker Pipelines starts the steps' jobs and reads property files as the
        # pipeline's role (its RoleArn), and passes the jobs their roles (iam:PassRole).
        self._session_factory, self._jobs, self._as_role = session_factory, jobs, as_role
        self.executions: dict[str, Execution] = {}
        self._lock = threading.Lock()

    def start(self, arn: str, pipeline_name: str, pipeline_arn: str, definition: dict, given: list[dict[str, str]]) -> Execution:
        execution = Execution(arn, pipeline_name, pipeline_arn, definition, parameter_values(definition, given))
        with self._lock:
            self.executions[arn] = execution
        threading.Thread(target=self._run, args=(execution,), name=f"pipeline-{execution.id}", daemon=True).start()
        return execution

    def wait(self, arn: str, timeout: float = 600) -> Execution:
        execution = self.executions[arn]
        execution.done.wait(timeout)
        return execution

    def steps(self, arn: str, descending: bool = True) -> list[dict[str, Any]]:
        runs = sorted(self.executions[arn].steps.values(), key=lambda run: run.started, reverse=descending)
        return [run.summary() for run in runs]

    # --- running ----------------------------------------------------------------------

    def _run(self, execution: Execution) -> None:
        try:
            role_arn = self._session_factory().client("sagemaker").describe_pipeline(PipelineName=execution.pipeline_name)["RoleArn"]
            self._as_role(role_arn)  # SageMaker refuses a role it cannot assume before any step
            execution.role_arn = role_arn
            self._run_steps(execution, execution.definition.get("Steps", []))
            failed = [run for run in execution.steps.values() if run.status == "Failed"]
            execution.status, execution.failure_reason = ("Failed", STEP_FAILURE) if failed else ("Succeeded", None)
        except RoleNotAssumable as error:
            execution.status, execution.failure_reason = "Failed", f"ClientError: {error}"
        except Exception as error:  # noqa: BLE001 - a crash must end the execution, not hang it
            traceback.print_exc()
            execution.status, execution.failure_reason = "Failed", f"InternalServerError: local pipeline runner: {error}"
        finally:
            execution.ended = datetime.now(timezone.utc)
            execution.done.set()

    def _run_steps(self, execution: Execution, steps: list[dict]) -> bool:
        """Run `steps` in dependency order; False as soon as one fails (the rest never start)."""
        for step in in_dependency_order(steps):
            if not self._run_step(execution, step):
                return False
        return True

    def _run_step(self, execution: Execution, step: dict) -> bool:
        run = execution.steps[step["Name"]] = StepRun(step["Name"], step["Type"], step.get("DisplayName"), step.get("Description"))
        try:
            branch = None
            if step["Type"] == "Condition":
                outcome = all(self._condition(execution, c) for c in step["Arguments"].get("Conditions", []))
                run.metadata = {"Condition": {"Outcome": "True" if outcome else "False"}}
                branch = step["Arguments"].get("IfSteps" if outcome else "ElseSteps", [])
            elif step["Type"] == "Fail":
                message = str(self._resolve(execution, step["Arguments"].get("ErrorMessage", "")))
                run.metadata = {"Fail": {"ErrorMessage": message}}
                raise StepFailed(message)
            else:
                self._run_work(execution, step, run)
            run.status = "Succeeded"
        except StepFailed as error:
            run.status, run.failure_reason = "Failed", str(error)[:1024]
        except Exception as error:  # noqa: BLE001 - a crash fails the step, with the reason shown
            traceback.print_exc()
            run.status, run.failure_reason = "Failed", f"InternalServerError: local pipeline runner: {error}"[:1024]
        finally:
            run.ended = datetime.now(timezone.utc)
        if run.status != "Succeeded":
            return False
        return self._run_steps(execution, branch) if branch else True

    def _run_work(self, execution: Execution, step: dict, run: StepRun) -> None:
        """A Processing, Training or RegisterModel step: its request, sent to the local AWS."""
        arguments = self._resolve(execution, step["Arguments"])
        cache = step.get("CacheConfig", {})
        if cache.get("Enabled") and step["Type"] in CACHE_KEYS:
            run.cache_key = json.dumps({k: arguments.get(k) for k in CACHE_KEYS[step["Type"]]}, sort_keys=True)
            hit = self._cached(execution, step["Name"], run.cache_key, duration(cache.get("ExpireAfter", "")))
            if hit is not None:
                source, earlier = hit
                run.metadata, run.properties, run.cache_source = earlier.metadata, earlier.properties, source
                return
        sagemaker = self._as_role(execution.role_arn)[0].client("sagemaker")  # a session current at each step
        if step["Type"] == "RegisterModel":
            arguments.setdefault("ModelPackageDescription", f"registered by pipeline {execution.pipeline_name}")
            try:
                arn = sagemaker.create_model_package(**arguments)["ModelPackageArn"]
            except sagemaker.exceptions.ClientError as error:
                raise StepFailed(f"ClientError: {error}") from None
            run.metadata = {"RegisterModel": {"Arn": arn}}
            run.properties = sagemaker.describe_model_package(ModelPackageName=arn)
            return
        kind, create, describe, name_key, status_key = {
            "Processing": ("ProcessingJob", sagemaker.create_processing_job, sagemaker.describe_processing_job, "ProcessingJobName", "ProcessingJobStatus"),
            "Training": ("TrainingJob", sagemaker.create_training_job, sagemaker.describe_training_job, "TrainingJobName", "TrainingJobStatus"),
        }[step["Type"]]
        name = job_name(execution.id, step["Name"])
        try:
            reply = create(**{name_key: name, **arguments})
        except sagemaker.exceptions.ClientError as error:
            raise StepFailed(f"ClientError: {error}") from None
        run.metadata = {kind: {"Arn": reply[f"{kind}Arn"]}}
        self._jobs.wait(name, timeout=24 * 3600)
        run.properties = described = describe(**{name_key: name})
        if described[status_key] != "Completed":
            raise StepFailed(described.get("FailureReason") or f"{kind} {name} {described[status_key]}")

    def _cached(self, execution: Execution, step: str, key: str, expire_after: timedelta) -> tuple[str, StepRun] | None:
        """The latest Succeeded run of this pipeline's `step` with this cache key, not expired."""
        oldest = datetime.now(timezone.utc) - expire_after
        with self._lock:
            earlier = [e for e in self.executions.values() if e.pipeline_arn == execution.pipeline_arn and e is not execution]
        candidates = [
            (e.arn, run) for e in earlier for run in [e.steps.get(step)]
            if run is not None and run.status == "Succeeded" and run.cache_key == key and run.ended and run.ended >= oldest
        ]
        return max(candidates, key=lambda c: c[1].ended, default=None)

    # --- values -----------------------------------------------------------------------

    def _resolve(self, execution: Execution, value: Any) -> Any:
        if isinstance(value, list):
            return [self._resolve(execution, item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"}:
            return self._get(execution, value["Get"])
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return join.get("On", "").join(text(self._resolve(execution, item)) for item in join["Values"])
        if set(value) == {"Std:JsonGet"}:
            return self._json_get(execution, value["Std:JsonGet"])
        return {key: self._resolve(execution, item) for key, item in value.items()}

    def _get(self, execution: Execution, path: str) -> Any:
        root, _, rest = path.partition(".")
        if root == "Parameters":
            return execution.parameters[rest]
        if root == "Execution":
            return {
                "PipelineExecutionId": execution.id, "PipelineExecutionArn": execution.arn, "PipelineName": execution.pipeline_name,
                "PipelineArn": execution.pipeline_arn, "StartDateTime": execution.started.isoformat(),
                "CurrentDateTime": datetime.now(timezone.utc).isoformat(),
            }[rest]
        step, _, property_path = rest.partition(".")
        run = execution.steps.get(step)
        if run is None or run.status != "Succeeded":
            raise StepFailed(f"Get {path}: step {step} has not succeeded in this execution")
        try:
            return walk(run.properties, property_path)
        except KeyError as error:
            raise StepFailed(f"Get {path}: {error.args[0]}") from None

    def _json_get(self, execution: Execution, spec: dict) -> Any:
        """A value from a step's property file: the file is read from the step's output."""
        reference = spec["PropertyFile"]["Get"] if isinstance(spec["PropertyFile"], dict) else spec["PropertyFile"]
        step_name, property_file = reference.removeprefix("Steps.").split(".PropertyFiles.")
        step = next(s for s in all_steps(execution.definition["Steps"]) if s["Name"] == step_name)
        declared = next(f for f in step["PropertyFiles"] if f["PropertyFileName"] == property_file)
        output_uri = self._get(execution, f"Steps.{step_name}.ProcessingOutputConfig.Outputs['{declared['OutputName']}'].S3Output.S3Uri")
        uri = f"{output_uri.rstrip('/')}/{declared['FilePath']}"
        s3 = self._as_role(execution.role_arn)[0].client("s3")
        try:
            document = json.loads(read_object(s3, uri))
        except (s3.exceptions.NoSuchKey, json.JSONDecodeError) as error:
            raise StepFailed(f"JsonGet {property_file}: {uri} is missing or not JSON ({error})") from None
        except s3.exceptions.ClientError as error:  # e.g. the role may not read it
            raise StepFailed(f"ClientError: JsonGet {property_file}: {error}") from None
        try:
            return walk(document, spec["Path"])
        except KeyError as error:
            raise StepFailed(f"JsonGet {property_file} {spec['Path']}: {error.args[0]}") from None

    def _condition(self, execution: Execution, condition: dict) -> bool:
        kind = condition["Type"]
        if kind == "Not":
            return not self._condition(execution, condition["Expression"])
        if kind == "Or":
            return any(self._condition(execution, c) for c in condition["Conditions"])
        if kind == "In":
            query = self._resolve(execution, condition["QueryValue"])
            return any(same(query, self._resolve(execution, v)) for v in condition["Values"])
        left, right = self._resolve(execution, condition["LeftValue"]), self._resolve(execution, condition["RightValue"])
        if kind == "Equals":
            return same(left, right)
        if kind == "NotEquals":
            return not same(left, right)
        compare = {"GreaterThan": float.__gt__, "GreaterThanOrEqualTo": float.__ge__, "LessThan": float.__lt__, "LessThanOrEqualTo": float.__le__}[kind]
        try:
            return compare(float(left), float(right))
        except (TypeError, ValueError):
            raise StepFailed(f"condition {kind}: {left!r} and {right!r} are not numbers") from None


def job_name(execution_id: str, step: str) -> str:
    """pipelines-<execution id>-<step>-<random>, as SageMaker names a pipeline's jobs."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=10))
    return f"pipelines-{execution_id}-{step}-{suffix}"[:63]


def text(value: Any) -> str:
    """A value as Std:Join writes it (numbers as JSON writes them)."""
    return value if isinstance(value, str) else json.dumps(value)


def same(left: Any, right: Any) -> bool:
    try:
        return float(left) == float(right)
    except (TypeError, ValueError):
        return text(left) == text(right)
