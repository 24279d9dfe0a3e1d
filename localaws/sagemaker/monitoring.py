"""SageMaker Model Monitor's control plane, answered minimally (moto raises NotImplementedError).

Enough for the lab's Model Monitor path to deploy and be torn down offline: data-quality job
definitions and monitoring schedules are validated against botocore's own request shapes
(a wrong field fails as it would on AWS), stored, described, listed, stopped, started and
deleted. Nothing is ever executed: Model Monitor runs AWS's analyzer image, which has no
offline equivalent (the kit's own drift job is what runs offline).
"""
from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from typing import Any

import botocore.session
from botocore.validate import ParamValidator


class MonitoringApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


_SERVICE = botocore.session.get_session().get_service_model("sagemaker")


# What Model Monitor accepts (SageMaker docs, "Schedule expressions"): hourly, daily at an
# hour, every N hours from a start hour, or NOW for a one-off run.
MODEL_MONITOR_SCHEDULE = re.compile(
    r"cron\(0 \* \? \* \* \*\)"
    r"|cron\(0 ([01]?\d|2[0-3]) \? \* \* \*\)"
    r"|cron\(0 ([01]?\d|2[0-3])/([1-9]|1\d|2[0-4]) \? \* \* \*\)"
    r"|NOW"
)


def validate(operation: str, request: dict[str, Any]) -> None:
    """Raise ValidationException when `request` does not fit the operation's input shape."""
    report = ParamValidator().validate(request, _SERVICE.operation_model(operation).input_shape)
    if report.has_errors():
        raise MonitoringApiError(400, "ValidationException", report.generate_report())


class MonitoringStore:
    OPERATIONS = (
        "CreateDataQualityJobDefinition", "DescribeDataQualityJobDefinition", "DeleteDataQualityJobDefinition",
        "ListDataQualityJobDefinitions", "CreateMonitoringSchedule", "DescribeMonitoringSchedule",
        "DeleteMonitoringSchedule", "ListMonitoringSchedules", "StopMonitoringSchedule", "StartMonitoringSchedule",
        "ListMonitoringExecutions",
    )
    ARN_KINDS = (":monitoring-schedule/", ":data-quality-job-definition/")

    @classmethod
    def owns(cls, arn: str) -> bool:
        """Whether a ListTags ARN is one of this store's (moto knows nothing of them)."""
        return any(kind in arn for kind in cls.ARN_KINDS)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.definitions: dict[tuple[str, str], dict[str, dict]] = {}
        self.schedules: dict[tuple[str, str], dict[str, dict]] = {}

    def handle(self, operation: str, request: dict[str, Any], account: str, region: str) -> dict[str, Any]:
        validate(operation, request)
        with self._lock:
            return getattr(self, "_" + operation)(request, account, region)

    # --- job definitions -----------------------------------------------------------------

    def _CreateDataQualityJobDefinition(self, request, account, region):
        name = request["JobDefinitionName"]
        definitions = self.definitions.setdefault((account, region), {})
        if name in definitions:
            raise MonitoringApiError(400, "ResourceInUse", f"Job definition {name} already exists")
        arn = f"arn:aws:sagemaker:{region}:{account}:data-quality-job-definition/{name.lower()}"
        definitions[name] = {**request, "JobDefinitionArn": arn, "CreationTime": _now()}
        return {"JobDefinitionArn": arn}

    def _DescribeDataQualityJobDefinition(self, request, account, region):
        return dict(self._definition(request["JobDefinitionName"], account, region))

    def _DeleteDataQualityJobDefinition(self, request, account, region):
        name = request["JobDefinitionName"]
        self._definition(name, account, region)
        in_use = [s for s in self.schedules.get((account, region), {}).values() if s["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName") == name]
        if in_use:
            raise MonitoringApiError(400, "ValidationException", f"Job definition {name} is used by schedule {in_use[0]['MonitoringScheduleName']}")
        del self.definitions[(account, region)][name]
        return {}

    def _ListDataQualityJobDefinitions(self, request, account, region):
        items = self.definitions.get((account, region), {}).values()
        return {"JobDefinitionSummaries": [
            {"MonitoringJobDefinitionName": d["JobDefinitionName"], "MonitoringJobDefinitionArn": d["JobDefinitionArn"],
             "CreationTime": d["CreationTime"], "EndpointName": d["DataQualityJobInput"].get("EndpointInput", {}).get("EndpointName", "")}
            for d in items
        ]}

    def _definition(self, name, account, region):
        try:
            return self.definitions[(account, region)][name]
        except KeyError:
            raise MonitoringApiError(400, "ResourceNotFound", f"Could not find job definition {name}") from None

    # --- schedules -----------------------------------------------------------------------

    def _CreateMonitoringSchedule(self, request, account, region):
        name = request["MonitoringScheduleName"]
        schedules = self.schedules.setdefault((account, region), {})
        if name in schedules:
            raise MonitoringApiError(400, "ResourceInUse", f"Monitoring schedule {name} already exists")
        config = request["MonitoringScheduleConfig"]
        expression = config.get("ScheduleConfig", {}).get("ScheduleExpression", "")
        if not MODEL_MONITOR_SCHEDULE.fullmatch(expression):
            raise MonitoringApiError(400, "ValidationException", f"Schedule expression {expression!r} is not supported: use an hourly, daily or cron(0 [00-23]/[01-24] ? * * *) expression")
        definition = config.get("MonitoringJobDefinitionName")
        if definition:
            self._definition(definition, account, region)
        arn = f"arn:aws:sagemaker:{region}:{account}:monitoring-schedule/{name.lower()}"
        endpoint = self.definitions[(account, region)][definition]["DataQualityJobInput"].get("EndpointInput", {}).get("EndpointName") if definition else None
        schedules[name] = {
            "MonitoringScheduleArn": arn, "MonitoringScheduleName": name, "MonitoringScheduleStatus": "Scheduled",
            "MonitoringType": config.get("MonitoringType", "DataQuality"), "CreationTime": _now(), "LastModifiedTime": _now(),
            "MonitoringScheduleConfig": config, "EndpointName": endpoint, "Tags": request.get("Tags", []),
        }
        return {"MonitoringScheduleArn": arn}

    def _DescribeMonitoringSchedule(self, request, account, region):
        return {k: v for k, v in self._schedule(request["MonitoringScheduleName"], account, region).items() if k != "Tags"}

    def _DeleteMonitoringSchedule(self, request, account, region):
        self._schedule(request["MonitoringScheduleName"], account, region)
        del self.schedules[(account, region)][request["MonitoringScheduleName"]]
        return {}

    def _ListMonitoringSchedules(self, request, account, region):
        items = self.schedules.get((account, region), {}).values()
        endpoint = request.get("EndpointName")
        return {"MonitoringScheduleSummaries": [
            {k: s[k] for k in ("MonitoringScheduleName", "MonitoringScheduleArn", "CreationTime", "LastModifiedTime", "MonitoringScheduleStatus", "EndpointName", "MonitoringType")}
            for s in items if endpoint in (None, s["EndpointName"])
        ]}

    def _StopMonitoringSchedule(self, request, account, region):
        self._schedule(request["MonitoringScheduleName"], account, region)["MonitoringScheduleStatus"] = "Stopped"
        return {}

    def _StartMonitoringSchedule(self, request, account, region):
        self._schedule(request["MonitoringScheduleName"], account, region)["MonitoringScheduleStatus"] = "Scheduled"
        return {}

    def _ListTags(self, request, account, region):
        arn = request["ResourceArn"]
        for item in [*self.schedules.get((account, region), {}).values(), *self.definitions.get((account, region), {}).values()]:
            if arn in (item.get("MonitoringScheduleArn"), item.get("JobDefinitionArn")):
                return {"Tags": item.get("Tags", [])}
        raise MonitoringApiError(400, "ValidationException", f"Resource {arn} does not exist")

    def _ListMonitoringExecutions(self, request, account, region):
        return {"MonitoringExecutionSummaries": []}  # nothing runs offline (see the module docstring)

    def _schedule(self, name, account, region):
        try:
            return self.schedules[(account, region)][name]
        except KeyError:
            raise MonitoringApiError(400, "ResourceNotFound", f"Could not find monitoring schedule {name}") from None


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()


# One store per process: the layer answers API calls from it, CloudFormation models write to it.
STORE = MonitoringStore()
