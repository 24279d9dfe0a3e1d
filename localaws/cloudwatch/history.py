"""DescribeAlarmHistory, which moto 5.2.5 lacks (the AWS CLI's describe-alarm-history got HTTP 500).

CloudWatch keeps, per alarm, a ConfigurationUpdate item when it is created or changed, a
StateUpdate item for every state change (old and new state with their reasons in
HistoryData) and an Action item for every notification sent, newest first, also after the
alarm is deleted. The same here, per CloudWatch backend (account and region).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from dateutil import parser as dates
from moto.cloudwatch.models import CloudWatchBackend
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

_moto_set_alarm_state = CloudWatchBackend.set_alarm_state


def _items(backend: CloudWatchBackend) -> list[dict[str, Any]]:
    """The backend's alarm history, kept on the backend so moto's reset clears it too."""
    return backend.__dict__.setdefault("fraudlab_alarm_history", [])


def record(backend: CloudWatchBackend, alarm_name: str, kind: str, summary: str, data: dict[str, Any]) -> None:
    _items(backend).append({
        "AlarmName": alarm_name, "AlarmType": "MetricAlarm", "Timestamp": datetime.now(timezone.utc),
        "HistoryItemType": kind, "HistorySummary": summary, "HistoryData": json.dumps({"version": "1.0", **data}),
    })


def _set_alarm_state_recorded(self: CloudWatchBackend, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
    alarm = self.alarms.get(alarm_name)
    old_value, old_reason = (alarm.state_value, alarm.state_reason) if alarm else (None, None)
    _moto_set_alarm_state(self, alarm_name, reason, reason_data, state_value)
    if alarm is not None and old_value != state_value:
        record(self, alarm_name, "StateUpdate", f"Alarm updated from {old_value} to {state_value}", {
            "oldState": {"stateValue": old_value, "stateReason": old_reason},
            "newState": {"stateValue": state_value, "stateReason": reason},
        })


def _describe_alarm_history(self: CloudWatchResponse) -> ActionResult:
    name, kind = self._get_param("AlarmName"), self._get_param("HistoryItemType")
    start, end = (self._get_param(key) for key in ("StartDate", "EndDate"))
    items = [
        item for item in _items(self.cloudwatch_backend)
        if (name is None or item["AlarmName"] == name) and (kind is None or item["HistoryItemType"] == kind)
        and (start is None or item["Timestamp"] >= _date(start)) and (end is None or item["Timestamp"] <= _date(end))
    ]
    items.sort(key=lambda item: item["Timestamp"], reverse=self._get_param("ScanBy", "TimestampDescending") == "TimestampDescending")
    return ActionResult({"AlarmHistoryItems": items[: int(self._get_param("MaxRecords", 100))]})


def _date(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else dates.parse(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def apply() -> None:
    CloudWatchBackend.set_alarm_state = _set_alarm_state_recorded
    CloudWatchResponse.describe_alarm_history = _describe_alarm_history
