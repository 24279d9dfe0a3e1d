"""A thin WSGI layer in front of moto for the SageMaker calls moto records but does not run.

Protocol only (recognising calls, patching replies); the work is in sagemaker_jobs.
SageMaker speaks JSON with `X-Amz-Target: SageMaker.<Operation>`:
- CreateProcessingJob / CreateTrainingJob: moto records the job, then the runner runs it;
- CreateHyperParameterTuningJob: the runner trains the child jobs (moto invents a
  "FakeTrainingJobName" as the best one);
- Describe* of those: moto's reply, with the true status, failure reason, end time,
  final metrics and (tuning) best training job from the runner.
"""
from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any, Callable, Iterable

from localaws.sagemaker_jobs import JobRunner

TARGET_PREFIX = "SageMaker."
CREATE = {
    "CreateProcessingJob": ("processing", "ProcessingJobName"),
    "CreateTrainingJob": ("training", "TrainingJobName"),
    "CreateHyperParameterTuningJob": ("tuning", "HyperParameterTuningJobName"),
}
DESCRIBE = {
    "DescribeProcessingJob": ("ProcessingJobName", "ProcessingJobStatus", "ProcessingEndTime"),
    "DescribeTrainingJob": ("TrainingJobName", "TrainingJobStatus", "TrainingEndTime"),
    "DescribeHyperParameterTuningJob": ("HyperParameterTuningJobName", "HyperParameterTuningJobStatus", "HyperParameterTuningEndTime"),
}


class SageMakerLayer:
    def __init__(self, app: Callable, runner: JobRunner) -> None:
        self.app, self.runner = app, runner

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        operation = environ.get("HTTP_X_AMZ_TARGET", "").removeprefix(TARGET_PREFIX)
        if operation not in CREATE and operation not in DESCRIBE:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        status, headers, reply = self._forward(environ)
        if status.startswith("200"):
            request = json.loads(body or b"{}")
            if operation in CREATE:
                kind, name_key = CREATE[operation]
                self.runner.start(kind, request[name_key], request)
            else:
                reply = self._patch_describe(operation, request, reply)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(reply)))]
        start_response(status, headers)
        return [reply]

    def _forward(self, environ: dict[str, Any]) -> tuple[str, list, bytes]:
        captured: dict[str, Any] = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, capture)
        try:
            reply = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return captured["status"], captured["headers"], reply

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
            described["SecondaryStatus"] = {"InProgress": "Training", "Completed": "Completed", "Failed": "Failed"}[state.status]
        return json.dumps(described).encode()
