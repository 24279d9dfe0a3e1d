"""EventBridge rule targets moto does not deliver to: SageMaker pipelines.

moto matches events to rules and delivers to log groups, SQS queues, archives and other
buses; for any other target it raises NotImplementedError (a 500 to PutEvents). A rule
whose target is a SageMaker pipeline starts an execution, as EventBridge does it (the
target's SageMakerPipelineParameters as the execution's parameters; asynchronously, so
the event's sender never waits on it), through the local AWS's own SageMaker API so the
pipeline runner runs it, as the target's role (EventBridge assumes it as
events.amazonaws.com and calls StartPipelineExecution with it). The rest of a rule's targets go to moto as before.

CloudWatch publishes every alarm state change to the default bus
(`alarm_state_change` below, called by cloudwatch/alarms.py), which is how a rule on
"CloudWatch Alarm State Change" reacts to an alarm offline.
"""
from __future__ import annotations

import copy
import json
import threading
import traceback
from datetime import datetime
from typing import Any, Callable

from moto.events.models import Rule, events_backends

# (region, pipeline name, parameters, the target's RoleArn, the rule's ARN)
StartPipeline = Callable[[str, str, list[dict[str, str]], str, str], None]
_moto_send_to_targets = Rule.send_to_targets
_start_pipeline: StartPipeline | None = None


def install(start_pipeline: StartPipeline) -> None:
    """Deliver SageMaker pipeline targets with `start_pipeline` (the local AWS's client)."""
    global _start_pipeline
    _start_pipeline = start_pipeline
    Rule.send_to_targets = _send_to_targets


def is_pipeline(arn: str) -> bool:
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[2] == "sagemaker" and parts[5].startswith("pipeline/")


def _send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
    if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
        return
    pipelines = [t for t in self.targets if is_pipeline(t["Arn"])]
    others = [t for t in self.targets if not is_pipeline(t["Arn"])]
    if others:
        moto_rule = copy.copy(self)
        moto_rule.targets = others
        _moto_send_to_targets(moto_rule, original_event, transform_input)
    for target in pipelines:
        region, name = target["Arn"].split(":")[3], target["Arn"].split(":", 5)[5].removeprefix("pipeline/")
        parameters = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
        threading.Thread(target=_start, args=(region, name, parameters, target.get("RoleArn", ""), self.arn),
                         name=f"events-{self.name}", daemon=True).start()


def _start(region: str, name: str, parameters: list[dict[str, str]], role_arn: str, rule_arn: str) -> None:
    try:
        if _start_pipeline is None:
            raise RuntimeError("no pipeline starter installed (localaws.events.targets.install)")
        _start_pipeline(region, name, parameters, role_arn, rule_arn)
    except Exception:  # noqa: BLE001 - EventBridge retries and then drops; here: say why, drop
        traceback.print_exc()


def alarm_state_change(account: str, region: str, alarm, old: str, state: str, reason: str, now: datetime) -> None:
    """The event CloudWatch sends EventBridge when an alarm changes state (CloudWatch user
    guide, "Alarm events and EventBridge"), on the default bus of the alarm's region."""
    detail = {
        "alarmName": alarm.name,
        "state": {"value": state, "reason": reason, "timestamp": now.isoformat()},
        "previousState": {"value": old},
        "configuration": {"description": alarm.description or "",
                          "metrics": [{"metricStat": {"metric": {"namespace": alarm.namespace, "name": alarm.metric_name}}}]},
    }
    events_backends[account][region].put_events([{
        "Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change", "Detail": json.dumps(detail),
        "Resources": [alarm.alarm_arn], "Time": now.isoformat(),
    }])
