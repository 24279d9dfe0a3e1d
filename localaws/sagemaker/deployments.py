"""UpdateEndpoint, offline, as SageMaker's deployment guardrails run it (moto has no
UpdateEndpoint at all).

SageMaker developer guide, "Deployment guardrails" / "Blue/Green Deployments": the update
provisions a new (green) fleet from the new endpoint config beside the serving (blue) one,
then shifts traffic by the BlueGreenUpdatePolicy's TrafficRoutingConfiguration:
ALL_AT_ONCE; CANARY (CanarySize of the traffic, a baking period of WaitIntervalInSeconds,
then the rest); LINEAR (LinearStepSize at a time, baking after each step). After the last
shift it bakes TerminationWaitInSeconds more, then terminates blue. During every baking
period the AutoRollbackConfiguration's alarms are watched: one in ALARM sends all traffic
back to blue and ends the update, the endpoint InService on its old config. Without a
DeploymentConfig the update is blue/green, all at once. The endpoint reports Updating,
then RollingBack if it rolls back, then InService; LastDeploymentConfig says what ran.

A canary or linear step takes its share of the new fleet's capacity (CAPACITY_PERCENT, or
INSTANCE_COUNT of its instances), at most half of it as SageMaker requires; offline each
variant is one container, so the share is of the traffic only.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from botocore.exceptions import ClientError
from moto.sagemaker.models import sagemaker_backends

from localaws.clients import ClientSource
from localaws.runtime.endpoints import EndpointError, EndpointHost

WATCH_SECONDS = 0.5  # how often the rollback alarms are read while baking


class UpdateRefused(Exception):
    """What SageMaker's UpdateEndpoint answers with a ValidationException."""


@dataclass
class Deployment:
    region: str
    endpoint: str
    old_config: str
    new_config: str
    deployment_config: dict[str, Any]
    instances: int  # of the new fleet
    role_arn: str  # the new fleet's execution role, which reads the rollback alarms


class AlarmsUnreadable(Exception):
    """The execution role may not read the rollback alarms: nothing would ever roll back."""


class DeploymentRunner:
    def __init__(self, host: EndpointHost, as_role: Callable[[str, str], tuple[ClientSource, dict[str, str]]], account_id: str) -> None:
        # SageMaker reads the AutoRollbackConfiguration alarms with the endpoint's execution role
        # (deployment guardrails guide: "Ensure that your IAM execution role has permission to
        # perform the cloudwatch:DescribeAlarms action").
        self._host, self._as_role, self._account_id = host, as_role, account_id
        self.deployments: dict[tuple[str, str], Deployment] = {}

    def start(self, region: str, name: str, new_config: str, deployment_config: dict[str, Any]) -> Deployment:
        backend = sagemaker_backends[self._account_id][region]
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise UpdateRefused(f"Could not find endpoint \"{name}\".")
        if endpoint.endpoint_status != "InService":
            raise UpdateRefused(f"Cannot update in-progress endpoint \"{endpoint.arn}\".")
        if new_config not in backend.endpoint_configs:
            raise UpdateRefused(f"Could not find endpoint configuration \"{new_config}\".")
        if "RollingUpdatePolicy" in deployment_config:
            raise UpdateRefused("the local AWS runs blue/green updates only (BlueGreenUpdatePolicy), not RollingUpdatePolicy")
        instances = sum(int(v.get("InitialInstanceCount") or 1) for v in backend.endpoint_configs[new_config].production_variants)
        for share, _ in shifts(deployment_config, instances)[:-1]:
            if share > 0.5:
                raise UpdateRefused(f"a canary or linear step of {share:.0%} is more than 50% of the new fleet's capacity")
        first = backend.endpoint_configs[new_config].production_variants[0]["ModelName"]
        role_arn = backend._models[first].execution_role_arn if first in backend._models else ""  # noqa: SLF001 - moto keeps models private
        deployment = Deployment(region, name, endpoint.endpoint_config_name, new_config, deployment_config, instances, role_arn)
        self.deployments[(region, name)] = deployment
        endpoint.endpoint_status = "Updating"
        threading.Thread(target=self._run, args=(deployment,), name=f"update-{name}", daemon=True).start()
        return deployment

    def _run(self, deployment: Deployment) -> None:
        region, name = deployment.region, deployment.endpoint
        try:
            self._host.start_green(region, name, deployment.new_config)
            for share, bake in shifts(deployment.deployment_config, deployment.instances):
                self._host.shift(region, name, share)
                if self._bake(deployment, bake):  # an alarm fired: back to the old fleet
                    self._roll_back(deployment)
                    return
            self._host.promote(region, name)
            self._finish(deployment, deployment.new_config)
        except EndpointError as error:  # the new fleet never became healthy: the old one serves on
            self._host.roll_back(region, name)
            self._finish(deployment, deployment.old_config, failure=f"The new fleet failed to start: {error}")
        except AlarmsUnreadable as error:
            self._host.roll_back(region, name)
            self._finish(deployment, deployment.old_config, failure=str(error))
        except Exception as error:  # noqa: BLE001 - the endpoint must not stay Updating forever
            traceback.print_exc()
            self._host.roll_back(region, name)
            self._finish(deployment, deployment.old_config, failure=f"InternalServerError: local deployment: {error}")

    def _bake(self, deployment: Deployment, seconds: float) -> str | None:
        """Watch the rollback alarms for `seconds`; the name of one in ALARM, if any."""
        alarms = [a["AlarmName"] for a in deployment.deployment_config.get("AutoRollbackConfiguration", {}).get("Alarms", [])]
        cloudwatch = self._as_role(deployment.role_arn, deployment.region)[0].client("cloudwatch") if alarms else None
        until = time.monotonic() + seconds
        while True:
            if cloudwatch is not None:
                try:
                    described = cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
                except ClientError as error:
                    raise AlarmsUnreadable(f"ClientError: the execution role {deployment.role_arn} could not read the rollback alarms: "
                                           f"{error.response['Error']['Message']}") from None
                firing = [a["AlarmName"] for a in described if a["StateValue"] == "ALARM"]
                if firing:
                    return firing[0]
            if time.monotonic() >= until:
                return None
            time.sleep(min(WATCH_SECONDS, max(0.0, until - time.monotonic())))

    def _roll_back(self, deployment: Deployment) -> None:
        endpoint = sagemaker_backends[self._account_id][deployment.region].endpoints.get(deployment.endpoint)
        if endpoint is not None:
            endpoint.endpoint_status = "RollingBack"
        self._host.roll_back(deployment.region, deployment.endpoint)
        self._finish(deployment, deployment.old_config)

    def _finish(self, deployment: Deployment, config: str, failure: str | None = None) -> None:
        """The endpoint InService on `config`: the new one, or the old one after a rollback."""
        backend = sagemaker_backends[self._account_id][deployment.region]
        endpoint = backend.endpoints.get(deployment.endpoint)
        if endpoint is None:  # deleted meanwhile
            return
        variants = backend.endpoint_configs[config].production_variants if config in backend.endpoint_configs else []
        endpoint.endpoint_config_name = config
        endpoint.production_variants = endpoint._process_production_variants(variants)
        endpoint.failure_reason = failure
        endpoint.last_modified_time = datetime.now(timezone.utc)
        endpoint.endpoint_status = "InService"


def shifts(deployment_config: dict[str, Any], instances: int) -> list[tuple[float, float]]:
    """(share of traffic on the new fleet, seconds to bake after it), in order; `instances`:
    the new fleet's, which an INSTANCE_COUNT size is a part of."""
    policy = deployment_config.get("BlueGreenUpdatePolicy", {})
    routing = policy.get("TrafficRoutingConfiguration", {"Type": "ALL_AT_ONCE"})
    wait = float(routing.get("WaitIntervalInSeconds", 0))
    final = float(policy.get("TerminationWaitInSeconds", 0))
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind == "ALL_AT_ONCE":
        return [(1.0, final)]
    if kind == "CANARY":
        return [(size_share(routing["CanarySize"], instances), wait), (1.0, final)]
    if kind == "LINEAR":
        step = size_share(routing["LinearStepSize"], instances)
        steps = [min(1.0, step * i) for i in range(1, int(1 / step) + 1)]
        if steps[-1] < 1.0:
            steps.append(1.0)
        return [(share, wait) for share in steps[:-1]] + [(1.0, final)]
    raise UpdateRefused(f"TrafficRoutingConfiguration Type {kind} is not one of ALL_AT_ONCE, CANARY, LINEAR")


def size_share(size: dict[str, Any], instances: int) -> float:
    """A CanarySize / LinearStepSize as the share of traffic it takes: a percentage of the
    new fleet's capacity, or a number of its instances."""
    value = float(size["Value"])
    return value / 100 if size["Type"] == "CAPACITY_PERCENT" else value / max(instances, 1)
