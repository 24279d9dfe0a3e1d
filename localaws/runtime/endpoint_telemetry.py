"""What SageMaker publishes for a real-time endpoint, offline: its CloudWatch metrics and logs.

On AWS every endpoint variant publishes, each minute it is invoked, to namespace
AWS/SageMaker with dimensions EndpointName and VariantName: Invocations,
InvocationsPerInstance, Invocation4XXErrors and Invocation5XXErrors (what the container
answered, 0 when none), ModelLatency (the container's time) and OverheadLatency (the rest
of SageMaker's time), both in microseconds. The container's stdout and stderr go to the
log group /aws/sagemaker/Endpoints/<endpoint>, one stream per instance,
<variant>/<instance id>. Here the same, from each invocation's measured times and the
serving container's log file; the alarms evaluate from these metrics (cloudwatch/alarms.py).
"""
from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from localaws.clients import ClientSource

NAMESPACE = "AWS/SageMaker"
VALUES_PER_DATUM = 150  # PutMetricData's limit of distinct Values in one datum
LOG_EVENTS_PER_CALL = 10_000  # PutLogEvents' limit


@dataclass
class _Window:
    """Invocations since the last publication."""

    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_us: Counter = field(default_factory=Counter)
    overhead_us: Counter = field(default_factory=Counter)


class EndpointTelemetry:
    """One endpoint variant's metrics and log, published by the endpoint host's housekeeping."""

    def __init__(self, endpoint: str, variant: str, log_file: Path, metrics: ClientSource, logs: Callable[[], ClientSource],
                 instances: int = 1) -> None:
        self.endpoint, self.variant, self.instances = endpoint, variant, instances
        # Made once: a session and two clients are slow to make, and publication runs every second.
        # SageMaker publishes AWS/SageMaker itself; the container's log goes as the model's role.
        self._cloudwatch, self._logs = metrics.client("cloudwatch"), logs  # the role's clients, current at each use
        self.log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
        self.log_stream = f"{variant}/i-{secrets.token_hex(9)[:17]}"  # an EC2 instance id
        self._log_file, self._log_offset, self._log_ready = log_file, 0, False
        self._window = _Window()
        self._lock = threading.Lock()

    def record(self, status: int, model_seconds: float, overhead_seconds: float) -> None:
        """One invocation the container answered with `status`."""
        with self._lock:
            window = self._window
            window.invocations += 1
            window.errors_4xx += 400 <= status < 500
            window.errors_5xx += status >= 500
            window.model_us[round(model_seconds * 1e6)] += 1
            window.overhead_us[round(overhead_seconds * 1e6)] += 1

    def publish(self) -> None:
        """Metrics of the invocations since the last call, and the log lines written since."""
        with self._lock:
            window, self._window = self._window, _Window()
        if window.invocations:
            self._put_metrics(window)
        self._ship_log()

    def _put_metrics(self, window: _Window) -> None:
        now = datetime.now(timezone.utc)
        dimensions = [{"Name": "EndpointName", "Value": self.endpoint}, {"Name": "VariantName", "Value": self.variant}]
        datum = lambda name, unit, **value: {"MetricName": name, "Dimensions": dimensions, "Timestamp": now, "Unit": unit, **value}  # noqa: E731
        data = [
            datum("Invocations", "None", Value=window.invocations),
            datum("InvocationsPerInstance", "None", Value=window.invocations / self.instances),
            datum("Invocation4XXErrors", "None", Value=window.errors_4xx),
            datum("Invocation5XXErrors", "None", Value=window.errors_5xx),
        ]
        for name, spread in (("ModelLatency", window.model_us), ("OverheadLatency", window.overhead_us)):
            values = sorted(spread.items())
            for start in range(0, len(values), VALUES_PER_DATUM):
                chunk = values[start:start + VALUES_PER_DATUM]
                data.append(datum(name, "Microseconds", Values=[float(v) for v, _ in chunk], Counts=[float(c) for _, c in chunk]))
        for start in range(0, len(data), 1000):  # PutMetricData takes up to 1,000 datums
            self._cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start:start + 1000])

    def _ship_log(self) -> None:
        logs = self._logs().client("logs")
        try:
            with self._log_file.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read()
        except FileNotFoundError:
            return
        complete = text.rfind(b"\n") + 1  # a line still being written waits for the next call
        lines = [line for line in text[:complete].decode("utf-8", errors="replace").splitlines() if line.strip()]
        self._log_offset += complete
        if not lines:
            return
        if not self._log_ready:  # SageMaker creates the group if the stack did not
            for create in (lambda: logs.create_log_group(logGroupName=self.log_group),
                           lambda: logs.create_log_stream(logGroupName=self.log_group, logStreamName=self.log_stream)):
                try:
                    create()
                except logs.exceptions.ResourceAlreadyExistsException:
                    pass
            self._log_ready = True
        now = int(datetime.now(timezone.utc).timestamp() * 1000)
        for start in range(0, len(lines), LOG_EVENTS_PER_CALL):
            events = [{"timestamp": now, "message": line} for line in lines[start:start + LOG_EVENTS_PER_CALL]]
            logs.put_log_events(logGroupName=self.log_group, logStreamName=self.log_stream, logEvents=events)
