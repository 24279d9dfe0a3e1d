"""A thin WSGI layer in front of moto for the SageMaker calls moto records but does not run.

Protocol only (recognising calls, routing them); the work is in jobs.py (and pipelines.py,
deployments.py, monitoring.py), the shaping of Describe*/List* replies in describe.py.
SageMaker speaks JSON with `X-Amz-Target: SageMaker.<Operation>`:
- CreateProcessingJob / CreateTrainingJob: moto records the job, then the runner runs it;
- CreateHyperParameterTuningJob: the runner trains the child jobs (moto invents a
  "FakeTrainingJobName" as the best one);
- Describe* of those: moto's reply, with the true status, failure reason, end time,
  final metrics and (tuning) best training job from the runner (shaped in describe.py);
- Create/UpdatePipeline: the definition checked as SageMaker checks it
  (pipeline_definition.py); StartPipelineExecution: moto records it, the pipeline runner
  (pipelines.py) runs it; Describe/List PipelineExecution(s) with the true status;
  ListPipelineExecutionSteps (moto has none);
- UpdateEndpoint (moto has none): a blue/green deployment (deployments.py);
  UpdateEndpointWeightsAndCapacities: moto records it, the serving host routes by it.
"""
from __future__ import annotations

import io
import json
import re
from functools import cached_property
from typing import Any, Callable, Iterable

from moto.sagemaker.models import sagemaker_backends

from localaws.iam.authorizer import RoleNotAssumable
from localaws.runtime.endpoints import EndpointError, EndpointHost
from localaws.sagemaker import describe
from localaws.sagemaker.deployments import DeploymentRunner, UpdateRefused
from localaws.sagemaker.jobs import JobNotRunning, JobRunner
from localaws.sagemaker.monitoring import STORE, MonitoringApiError
from localaws.sagemaker.pipeline_definition import DefinitionError, parameter_values, validate
from localaws.sagemaker.pipelines import PipelineRunner
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
            **dict.fromkeys(describe.LIST, self._list),
            **dict.fromkeys(CREATE, self._create),
            **dict.fromkeys(describe.DESCRIBE, self._describe),
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
        kind, name_key = CREATE[request.operation]
        try:
            self.runner.assume(kind, request.json)
        except RoleNotAssumable as error:
            return request.validation(str(error))
        status, headers, reply = request.forward()
        if status.startswith("200"):
            self.runner.start(kind, request.json[name_key], request.json)
        return request.reply(status, headers, reply)

    def _describe(self, request: Request) -> Iterable[bytes]:
        """moto's reply with the job's true status, failure reason, times and metrics."""
        kind = describe.DESCRIBE[request.operation]
        status, headers, reply = request.forward()
        state = self.runner.jobs.get(request.json.get(describe.FIELDS[kind][0], "")) if status.startswith("200") else None
        if state is not None:
            described = json.loads(reply)
            describe.job(kind, described, state)
            reply = json.dumps(described).encode()
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
        kind, key = describe.LIST[request.operation]
        name_key, status_key, _ = describe.FIELDS[kind]
        body = dict(request.json)
        wanted = body.pop("StatusEquals", None)
        status, headers, reply = request.forward(json.dumps(body).encode())
        if not status.startswith("200"):
            return request.reply(status, headers, reply)
        listed = json.loads(reply)
        for summary in listed.get(key, []):
            state = self.runner.jobs.get(summary[name_key])
            if state is not None:
                describe.summary(kind, summary, state)
        listed[key] = [s for s in listed.get(key, []) if wanted in (None, s[status_key])]
        return request.json_reply(listed)

    def _list_tags(self, request: Request) -> Iterable[bytes]:
        """The tags of a monitoring schedule or job definition are the store's; moto has the rest."""
        if STORE.owns(request.json.get("ResourceArn", "")):
            return self._monitoring(request)
        return request.pass_on()

    def _monitoring(self, request: Request) -> Iterable[bytes]:
        """Model Monitor's control plane, which moto lacks (see monitoring.py)."""
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
            self._patch_execution(described, "FailureReason")
            reply = json.dumps(described).encode()
        elif status.startswith("200") and operation == "ListPipelineExecutions":
            listed = json.loads(reply)
            for summary in listed.get("PipelineExecutionSummaries", []):
                self._patch_execution(summary, "PipelineExecutionFailureReason")
            reply = json.dumps(listed).encode()
        return request.reply(status, headers, reply)

    def _patch_execution(self, described: dict[str, Any], reason_key: str) -> None:
        execution = self.pipelines.executions.get(described["PipelineExecutionArn"])
        if execution is not None:
            describe.pipeline_execution(described, execution, reason_key)

    def _invoke(self, request: Request, name: str) -> Iterable[bytes]:
        """InvokeEndpoint (sagemaker-runtime, REST-JSON) on the shared endpoint URL."""
        environ = request.environ
        status, headers, body = invoke_reply(
            self.endpoints, self.account_id, request.region, name, request.body,
            environ.get("CONTENT_TYPE", ""), environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT", ""),
        )
        request.start_response(status, headers)
        return [body]

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

