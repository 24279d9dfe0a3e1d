"""A thin WSGI layer in front of moto for the SageMaker calls moto records but does not run.

Protocol only (recognising calls, patching replies); the work is in sagemaker_jobs.
SageMaker speaks JSON with `X-Amz-Target: SageMaker.<Operation>`:
- CreateProcessingJob / CreateTrainingJob: moto records the job, then the runner runs it;
- CreateHyperParameterTuningJob: the runner trains the child jobs (moto invents a
  "FakeTrainingJobName" as the best one);
- Describe* of those: moto's reply, with the true status, failure reason, end time,
  final metrics and (tuning) best training job from the runner;
- Create/UpdatePipeline: the definition checked as SageMaker checks it; StartPipeline-
  Execution: moto records it, the pipeline runner (pipelines.py) runs it; Describe/List
  PipelineExecution(s) with the true status; ListPipelineExecutionSteps (moto has none);
- UpdateEndpoint (moto has none): a blue/green deployment (deployments.py);
  UpdateEndpointWeightsAndCapacities: moto records it, the serving host routes by it.
"""
from __future__ import annotations

import io
import json
import math
import re
from datetime import datetime
from functools import cached_property
from typing import Any, Callable, Iterable

from moto.sagemaker.models import sagemaker_backends

from localaws.runtime.endpoints import EndpointError, EndpointHost
from localaws.sagemaker.deployments import DeploymentRunner, UpdateRefused
from localaws.sagemaker.jobs import JobNotRunning, JobRunner, JobState
from localaws.sagemaker.monitoring import STORE, MonitoringApiError
from localaws.sagemaker.pipelines import DefinitionError, PipelineRunner, parameter_values, validate
from localaws.wsgi import call, json_reply

INVOKE_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
REGION_IN_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")

TARGET_PREFIX = "SageMaker."
CREATE = {
    "CreateProcessingJob": ("processing", "ProcessingJobName"),
    "CreateTrainingJob": ("training", "TrainingJobName"),
    "CreateHyperParameterTuningJob": ("tuning", "HyperParameterTuningJobName"),
    "CreateTransformJob": ("transform", "TransformJobName"),
}
STOP = {
    "StopProcessingJob": "ProcessingJobName",
    "StopTrainingJob": "TrainingJobName",
    "StopHyperParameterTuningJob": "HyperParameterTuningJobName",
    "StopTransformJob": "TransformJobName",
}
# List* of run jobs: moto lists them Completed at once; the runner knows better.
LIST = {
    "ListProcessingJobs": ("ProcessingJobSummaries", "ProcessingJobName", "ProcessingJobStatus", "ProcessingEndTime"),
    "ListTrainingJobs": ("TrainingJobSummaries", "TrainingJobName", "TrainingJobStatus", "TrainingEndTime"),
    "ListHyperParameterTuningJobs": (
        "HyperParameterTuningJobSummaries", "HyperParameterTuningJobName", "HyperParameterTuningJobStatus", "HyperParameterTuningEndTime",
    ),
}
DESCRIBE = {
    "DescribeProcessingJob": ("ProcessingJobName", "ProcessingJobStatus", "ProcessingEndTime"),
    "DescribeTrainingJob": ("TrainingJobName", "TrainingJobStatus", "TrainingEndTime"),
    "DescribeHyperParameterTuningJob": ("HyperParameterTuningJobName", "HyperParameterTuningJobStatus", "HyperParameterTuningEndTime"),
    "DescribeTransformJob": ("TransformJobName", "TransformJobStatus", "TransformEndTime"),
}


PIPELINE_OPERATIONS = ("CreatePipeline", "UpdatePipeline", "StartPipelineExecution", "DescribePipelineExecution",
                       "ListPipelineExecutions", "ListPipelineExecutionSteps")


class Request:
    """One call this layer answers: its body read once (and put back for moto), its region,
    and the ways to answer it."""

    def __init__(self, app: Callable, environ: dict[str, Any], start_response: Callable, operation: str = "") -> None:
        self.app, self.environ, self.start_response, self.operation = app, environ, start_response, operation
        self.body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(self.body)
        self.region = region_of(environ.get("HTTP_AUTHORIZATION", ""))

    @cached_property
    def json(self) -> dict[str, Any]:
        """The JSON body, parsed on first use (an InvokeEndpoint body is not JSON)."""
        return json.loads(self.body or b"{}")

    def forward(self, body: bytes | None = None) -> tuple[str, list, bytes]:
        """moto's (status line, headers, body), for this layer to patch; `body` replaces the request's."""
        return call(self.app, self.environ, body)

    def pass_on(self) -> Iterable[bytes]:
        """moto answers, untouched."""
        return self.app(self.environ, self.start_response)

    def reply(self, status: str, headers: list, body: bytes) -> list[bytes]:
        """moto's reply with `body` in it: its Content-Length made to fit."""
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]
        self.start_response(status, headers)
        return [body]

    def json_reply(self, document: dict) -> list[bytes]:
        return json_reply(self.start_response, document)

    def error(self, status: int, code: str, message: str) -> list[bytes]:
        """An AWS JSON-protocol error: `code` as its type, `message` as its message."""
        status_line, headers, body = _error_reply(status, code, {"__type": code, "message": message})
        self.start_response(status_line, headers)
        return [body]

    def validation(self, message: str) -> list[bytes]:
        return self.error(400, "ValidationException", message)


class SageMakerLayer:
    def __init__(self, app: Callable, runner: JobRunner, endpoints: EndpointHost, account_id: str, pipelines: PipelineRunner,
                 deployments: DeploymentRunner) -> None:
        self.app, self.runner, self.endpoints, self.account_id = app, runner, endpoints, account_id
        self.pipelines, self.deployments = pipelines, deployments
        # Operation -> handler; every other call goes to moto untouched (its body unread).
        self._routes: dict[str, Callable[[Request], Iterable[bytes]]] = {
            "DeleteEndpoint": self._delete_endpoint,
            "DescribeEndpoint": self._describe_endpoint,
            "UpdateEndpointWeightsAndCapacities": self._update_weights,
            "UpdateEndpoint": self._update_endpoint,
            **dict.fromkeys(STORE.OPERATIONS, self._monitoring),
            **dict.fromkeys(PIPELINE_OPERATIONS, self._pipeline),
            "ListTags": self._list_tags,
            **dict.fromkeys(STOP, self._stop),
            **dict.fromkeys(LIST, self._list),
            **dict.fromkeys(CREATE, self._create),
            **dict.fromkeys(DESCRIBE, self._describe),
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        invoked = INVOKE_PATH.match(environ.get("PATH_INFO", ""))
        if invoked and environ.get("REQUEST_METHOD") == "POST":
            return self._invoke(Request(self.app, environ, start_response), invoked.group(1))
        operation = environ.get("HTTP_X_AMZ_TARGET", "").removeprefix(TARGET_PREFIX)
        handler = self._routes.get(operation)
        if handler is None:
            return self.app(environ, start_response)
        return handler(Request(self.app, environ, start_response, operation))

    def _delete_endpoint(self, request: Request) -> Iterable[bytes]:
        """The serving containers stop; moto deletes the endpoint."""
        self.endpoints.stop(request.region, request.json.get("EndpointName", ""))
        return request.pass_on()

    def _create(self, request: Request) -> Iterable[bytes]:
        """moto records the job, then the runner runs it."""
        refused = refusal(request.operation, request.json)
        if refused:
            return request.validation(refused)
        status, headers, reply = request.forward()
        if status.startswith("200"):
            kind, name_key = CREATE[request.operation]
            self.runner.start(kind, request.json[name_key], request.json)
        return request.reply(status, headers, reply)

    def _describe(self, request: Request) -> Iterable[bytes]:
        status, headers, reply = request.forward()
        if status.startswith("200"):
            reply = self._patch_describe(request.operation, request.json, reply)
        return request.reply(status, headers, reply)

    def _describe_endpoint(self, request: Request) -> Iterable[bytes]:
        """moto says InService at once; here that means the serving container really answers /ping."""
        status, headers, reply = request.forward()
        if status.startswith("200"):
            name = request.json["EndpointName"]
            described = json.loads(reply)
            deployment = self.deployments.deployments.get((request.region, name))
            if deployment is not None and deployment.deployment_config:
                described["LastDeploymentConfig"] = deployment.deployment_config
            if described.get("EndpointStatus") == "InService" and not self.endpoints.is_starting(request.region, name):
                try:
                    self.endpoints.ensure(request.region, name)
                except EndpointError as error:
                    described["EndpointStatus"], described["FailureReason"] = "Failed", str(error)
                reply = json.dumps(described).encode()
        return request.reply(status, headers, reply)

    def _update_endpoint(self, request: Request) -> Iterable[bytes]:
        """UpdateEndpoint (moto has none): a blue/green deployment by the request's DeploymentConfig."""
        body = request.json
        try:
            deployment = self.deployments.start(request.region, body.get("EndpointName", ""), body.get("EndpointConfigName", ""), body.get("DeploymentConfig") or {})
        except UpdateRefused as error:
            return request.validation(str(error))
        arn = sagemaker_backends[self.account_id][request.region].endpoints[deployment.endpoint].arn
        return request.json_reply({"EndpointArn": arn})

    def _update_weights(self, request: Request) -> Iterable[bytes]:
        """moto records the new weights; the serving host routes by them from now on."""
        status, headers, reply = request.forward()
        if status.startswith("200"):
            weights = {v["VariantName"]: float(v["DesiredWeight"]) for v in request.json.get("DesiredWeightsAndCapacities", []) if "DesiredWeight" in v}
            self.endpoints.set_weights(request.region, request.json.get("EndpointName", ""), weights)
        return request.reply(status, headers, reply)

    def _stop(self, request: Request) -> Iterable[bytes]:
        name = request.json.get(STOP[request.operation], "")
        if name not in self.runner.jobs:
            return request.validation(f"Could not find job {name}")
        try:
            self.runner.stop(name)
        except JobNotRunning as error:
            return request.validation(str(error))
        return request.json_reply({})

    def _list(self, request: Request) -> Iterable[bytes]:
        """moto's listing with each job's true status; StatusEquals applied to that status."""
        key, name_key, status_key, end_key = LIST[request.operation]
        body = dict(request.json)
        wanted = body.pop("StatusEquals", None)
        status, headers, reply = request.forward(json.dumps(body).encode())
        if not status.startswith("200"):
            return request.reply(status, headers, reply)
        listed = json.loads(reply)
        for summary in listed.get(key, []):
            state = self.runner.jobs.get(summary[name_key])
            if state is not None:
                summary[status_key] = state.status
                if state.ended is None:
                    summary.pop(end_key, None)
                else:
                    summary[end_key] = state.ended.timestamp()
        listed[key] = [s for s in listed.get(key, []) if wanted in (None, s[status_key])]
        return request.json_reply(listed)

    def _list_tags(self, request: Request) -> Iterable[bytes]:
        """The tags of a monitoring schedule or job definition are the store's; moto has the rest."""
        if STORE.owns(request.json.get("ResourceArn", "")):
            return self._monitoring(request)
        return request.pass_on()

    def _monitoring(self, request: Request) -> Iterable[bytes]:
        """Model Monitor's control plane, which moto lacks (see monitoring_api.py)."""
        try:
            reply = STORE.handle(request.operation, request.json, self.account_id, request.region)
        except MonitoringApiError as error:
            return request.error(error.status, error.code, str(error))
        return request.json_reply(reply)

    def _pipeline(self, request: Request) -> Iterable[bytes]:
        operation, body = request.operation, request.json
        try:
            if operation in ("CreatePipeline", "UpdatePipeline") and "PipelineDefinition" in body:
                validate(body["PipelineDefinition"])
            if operation == "StartPipelineExecution":
                name = body.get("PipelineName", "").rsplit("pipeline/", 1)[-1]
                pipeline = sagemaker_backends[self.account_id][request.region].pipelines.get(name)
                if pipeline is not None:  # moto answers the unknown name
                    definition = validate(pipeline.pipeline_definition)
                    parameter_values(definition, body.get("PipelineParameters", []))
        except DefinitionError as error:
            return request.validation(str(error))
        if operation == "ListPipelineExecutionSteps":
            if body.get("PipelineExecutionArn") not in self.pipelines.executions:
                return request.error(400, "ResourceNotFound", f"Pipeline execution {body.get('PipelineExecutionArn')} does not exist")
            return request.json_reply({"PipelineExecutionSteps": self.pipelines.steps(body["PipelineExecutionArn"], body.get("SortOrder") != "Ascending")})
        status, headers, reply = request.forward()
        if status.startswith("200") and operation == "StartPipelineExecution":
            arn = json.loads(reply)["PipelineExecutionArn"]
            self.pipelines.start(arn, pipeline.pipeline_name, pipeline.arn, definition, body.get("PipelineParameters", []))
        elif status.startswith("200") and operation == "DescribePipelineExecution":
            described = json.loads(reply)
            self._patch_execution(described, described["PipelineExecutionArn"], "FailureReason")
            reply = json.dumps(described).encode()
        elif status.startswith("200") and operation == "ListPipelineExecutions":
            listed = json.loads(reply)
            for summary in listed.get("PipelineExecutionSummaries", []):
                self._patch_execution(summary, summary["PipelineExecutionArn"], "PipelineExecutionFailureReason")
            reply = json.dumps(listed).encode()
        return request.reply(status, headers, reply)

    def _patch_execution(self, described: dict[str, Any], arn: str, reason_key: str) -> None:
        """moto says Succeeded at once; the runner knows the execution's true status."""
        execution = self.pipelines.executions.get(arn)
        if execution is None:
            return
        described["PipelineExecutionStatus"] = execution.status
        if execution.failure_reason:
            described[reason_key] = execution.failure_reason
        else:
            described.pop(reason_key, None)
        described["LastModifiedTime"] = (execution.ended or execution.started).timestamp()

    def _invoke(self, request: Request, name: str) -> Iterable[bytes]:
        """InvokeEndpoint (sagemaker-runtime, REST-JSON) on the shared endpoint URL."""
        environ = request.environ
        status, headers, body = invoke_reply(
            self.endpoints, self.account_id, request.region, name, request.body,
            environ.get("CONTENT_TYPE", ""), environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT", ""),
        )
        request.start_response(status, headers)
        return [body]

    def _patch_describe(self, operation: str, request: dict[str, Any], reply: bytes) -> bytes:
        name_key, status_key, end_key = DESCRIBE[operation]
        state = self.runner.jobs.get(request.get(name_key, ""))
        if state is None:
            return reply
        described = json.loads(reply)
        described[status_key] = state.status
        if state.failure_reason:
            described["FailureReason"] = state.failure_reason
        if state.ended:
            described[end_key] = state.ended.timestamp()
        else:
            described.pop(end_key, None)
        if state.final_metrics:
            described["FinalMetricDataList"] = [
                {**m, "Timestamp": m["Timestamp"].timestamp() if isinstance(m["Timestamp"], datetime) else m["Timestamp"]}
                for m in state.final_metrics
            ]
        described.update(state.reply_fields)
        if operation == "DescribeTrainingJob":
            _training_shape(described, state)
        elif operation == "DescribeTransformJob" and (started := state.entered("Transforming")):
            described["TransformStartTime"] = started.timestamp()
        elif operation == "DescribeProcessingJob":
            # moto drops ProcessingResources; SageMaker reports the request's
            described["ProcessingResources"] = state.spec.get("ProcessingResources", {})
            if started := state.entered("Processing"):
                described["ProcessingStartTime"] = started.timestamp()
        return json.dumps(described).encode()


def _training_shape(described: dict[str, Any], state: JobState) -> None:
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


def refusal(operation: str, request: dict[str, Any]) -> str | None:
    """What SageMaker's own validation says of a Create* request that moto accepts, or None."""
    if operation == "CreateTrainingJob":
        definitions = [request]
    elif operation == "CreateHyperParameterTuningJob":
        definitions = [request.get("TrainingJobDefinition") or {}, *request.get("TrainingJobDefinitions", [])]
    else:
        return None
    for definition in definitions:
        if definition.get("EnableManagedSpotTraining") and "MaxWaitTimeInSeconds" not in definition.get("StoppingCondition", {}):
            return "MaxWaitTimeInSeconds must be specified in StoppingCondition when EnableManagedSpotTraining is true."
    return None


def invoke_reply(
    endpoints: EndpointHost, account_id: str, region: str, name: str, body: bytes, content_type: str, accept: str, target_variant: str = ""
) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of InvokeEndpoint, answered by the serving container of
    the production variant it was routed to (or the TargetVariant it names)."""
    try:
        status, reply, reply_type, variant = endpoints.invoke(region, name, body, content_type, accept, target_variant)
    except EndpointError as error:
        return _error_reply(400, "ValidationError", {"message": str(error)})
    if status == 200:
        return "200 OK", [("Content-Type", reply_type), ("Content-Length", str(len(reply))), ("x-Amzn-Invoked-Production-Variant", variant)], reply
    # What SageMaker answers when the container returns an error: 424 ModelError.
    original = reply.decode("utf-8", errors="replace")
    kind = "client" if status < 500 else "server"
    return _error_reply(424, "ModelError", {
        "Message": f"Received {kind} error ({status}) from primary with message \"{original}\". See the endpoint's logs in account {account_id} for more information.",
        "OriginalStatusCode": status,
        "OriginalMessage": original,
        "LogStreamArn": f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/Endpoints/{name}",
    })


def region_of(authorization: str) -> str:
    """The region a request was signed for (the local AWS serves every region)."""
    found = REGION_IN_CREDENTIAL.search(authorization)
    return found.group(1) if found else "us-east-1"


def _error_reply(status: int, error_type: str, document: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    body = json.dumps(document).encode()
    reason = {400: "Bad Request", 404: "Not Found", 411: "Length Required", 424: "Failed Dependency"}[status]
    return f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("x-amzn-ErrorType", error_type)], body

