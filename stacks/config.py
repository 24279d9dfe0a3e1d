"""Lab configuration read from cdk.json context (keys namespaced `fraudlab:`).

Every value is validated here, once, so a typo in cdk.json or on the command line
(`cdk deploy -c fraudlab:maxAzs=three`) fails synth with one clear line instead of a
jsii stack trace deep inside a construct.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from aws_cdk.aws_logs import RetentionDays
from constructs import Node

NAMESPACE = "fraudlab:"

# CloudWatch Logs accepts only fixed retention periods; the lab offers the short ones.
LOG_RETENTION = {
    1: RetentionDays.ONE_DAY,
    3: RetentionDays.THREE_DAYS,
    5: RetentionDays.FIVE_DAYS,
    7: RetentionDays.ONE_WEEK,
    14: RetentionDays.TWO_WEEKS,
    30: RetentionDays.ONE_MONTH,
    60: RetentionDays.TWO_MONTHS,
    90: RetentionDays.THREE_MONTHS,
    180: RetentionDays.SIX_MONTHS,
    365: RetentionDays.ONE_YEAR,
}


# kit: the kit's own drift job (works on every account); modelMonitor: SageMaker Model
# Monitor (closed to new customers since 2025); off: no monitoring stack.
DRIFT_MONITORS = ("kit", "modelMonitor", "off")


class ConfigError(ValueError):
    """A context value is missing or malformed; the message names the key and the fix."""


@dataclass(frozen=True)
class LabConfig:
    stack_prefix: str
    max_azs: int
    interface_endpoints: bool
    firehose_buffer_mib: int
    firehose_buffer_seconds: int
    log_retention: RetentionDays
    access_log_expiration_days: int
    noncurrent_version_days: int
    model_package_group_name: str
    model_package_arn: str  # "" until a model is approved: then the endpoint stack exists
    endpoint_instance_type: str
    endpoint_min_instances: int
    endpoint_max_instances: int
    target_invocations_per_instance: int
    capture_sampling_percent: int
    serverless: bool
    latency_alarm_ms: int
    drift_monitor: str  # "kit" (own Processing job), "modelMonitor" (SageMaker Model Monitor) or "off"
    drift_schedule_hours: int
    drift_threshold: float
    monitor_instance_type: str
    alert_email: str

    def __post_init__(self) -> None:
        if self.endpoint_min_instances > self.endpoint_max_instances:
            raise ConfigError(
                f"context keys {NAMESPACE}endpointMinInstances={self.endpoint_min_instances} > "
                f"{NAMESPACE}endpointMaxInstances={self.endpoint_max_instances}: min must not exceed max"
            )

    @classmethod
    def from_context(cls, node: Node) -> "LabConfig":
        get = lambda key: node.try_get_context(NAMESPACE + key)  # noqa: E731
        return cls(
            stack_prefix=_name(get("stackPrefix"), "stackPrefix", r"[A-Za-z][A-Za-z0-9]{0,31}"),
            max_azs=_int(get("maxAzs"), "maxAzs", 2, 3),
            interface_endpoints=_bool(get("interfaceEndpoints"), "interfaceEndpoints"),
            # Firehose limits for S3 destinations: 1-128 MiB and 0-900 s.
            firehose_buffer_mib=_int(get("firehoseBufferMiB"), "firehoseBufferMiB", 1, 128),
            firehose_buffer_seconds=_int(get("firehoseBufferSeconds"), "firehoseBufferSeconds", 0, 900),
            log_retention=LOG_RETENTION[_choice(get("logRetentionDays"), "logRetentionDays", LOG_RETENTION)],
            access_log_expiration_days=_int(
                get("accessLogExpirationDays"), "accessLogExpirationDays", 1, 3653
            ),
            noncurrent_version_days=_int(get("noncurrentVersionDays"), "noncurrentVersionDays", 1, 365),
            model_package_group_name=_name(
                get("modelPackageGroupName"),
                "modelPackageGroupName",
                r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
            ),
            model_package_arn=_name(
                get("modelPackageArn"),
                "modelPackageArn",
                r"|arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[a-zA-Z0-9-]+/\d+",
            ),
            endpoint_instance_type=_name(get("endpointInstanceType"), "endpointInstanceType", r"ml\.[a-z0-9]+\.[a-z0-9]+"),
            endpoint_min_instances=_int(get("endpointMinInstances"), "endpointMinInstances", 1, 10),
            endpoint_max_instances=_int(get("endpointMaxInstances"), "endpointMaxInstances", 1, 10),
            target_invocations_per_instance=_int(get("targetInvocationsPerInstance"), "targetInvocationsPerInstance", 1, 100_000),
            capture_sampling_percent=_int(get("captureSamplingPercent"), "captureSamplingPercent", 0, 100),
            serverless=_bool(get("serverless"), "serverless"),
            latency_alarm_ms=_int(get("latencyAlarmMs"), "latencyAlarmMs", 1, 60_000),
            drift_monitor=_choice(get("driftMonitor"), "driftMonitor", DRIFT_MONITORS),
            drift_schedule_hours=_int(get("driftScheduleHours"), "driftScheduleHours", 1, 24),
            drift_threshold=_fraction(get("driftThreshold"), "driftThreshold"),
            monitor_instance_type=_name(get("monitorInstanceType"), "monitorInstanceType", r"ml\.[a-z0-9]+\.[a-z0-9]+"),
            alert_email=_name(get("alertEmail"), "alertEmail", r"|[^@\s]+@[^@\s]+\.[^@\s]+"),
        )


def _required(value: Any, key: str) -> Any:
    if value is None:
        raise ConfigError(f"context key {NAMESPACE}{key} is missing: set it in cdk.json")
    return value


def _parse(value: Any, key: str, expected: str, parse: Callable[[Any], Any]) -> Any:
    _required(value, key)
    try:
        return parse(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"context key {NAMESPACE}{key}={value!r} is not {expected}: fix it in cdk.json or -c"
        ) from None


def _int(value: Any, key: str, low: int, high: int) -> int:
    # Values given with -c arrive as strings; bools are ints in Python, so reject them.
    if isinstance(value, bool):
        value = "not-a-number"
    number = _parse(value, key, "a whole number", lambda v: int(str(v), 10))
    if not low <= number <= high:
        raise ConfigError(f"context key {NAMESPACE}{key}={number} must be between {low} and {high}")
    return number


def _choice(value: Any, key: str, allowed) -> Any:
    if all(isinstance(a, str) for a in allowed):
        choice = str(_required(value, key))
    else:
        choice = _parse(value, key, "a whole number", lambda v: int(str(v), 10))
    if choice not in allowed:
        raise ConfigError(f"context key {NAMESPACE}{key}={choice!r} must be one of {sorted(allowed)}")
    return choice


def _fraction(value: Any, key: str) -> float:
    if isinstance(value, bool):
        value = "not-a-number"
    number = _parse(value, key, "a number", lambda v: float(str(v)))
    if not 0 < number < 1:
        raise ConfigError(f"context key {NAMESPACE}{key}={number} must be between 0 and 1 (exclusive)")
    return number


def _bool(value: Any, key: str) -> bool:
    words = {"true": True, "false": False}

    def parse(v: Any) -> bool:
        if isinstance(v, bool):
            return v
        return words[str(v).lower()]

    try:
        return _parse(value, key, "true or false", parse)
    except KeyError:
        raise ConfigError(f"context key {NAMESPACE}{key}={value!r} is not true or false") from None


def _name(value: Any, key: str, pattern: str) -> str:
    text = str(_required(value, key))
    if not re.fullmatch(pattern, text):
        raise ConfigError(f"context key {NAMESPACE}{key}={text!r} must match {pattern}")
    return text
