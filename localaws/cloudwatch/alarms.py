"""CloudWatch alarm evaluation, offline: moto stores alarms and metrics but never compares them.

Every `interval` seconds each single-metric alarm is evaluated as CloudWatch does: the
statistic per period over the last EvaluationPeriods periods, compared with the threshold,
M of N datapoints to alarm, missing data treated as the alarm says. A state change is
recorded in moto (so DescribeAlarms and the alarm history show it), published to the
alarm's SNS actions with CloudWatch's notification fields, and sent to EventBridge as a
"CloudWatch Alarm State Change" event (events/targets.py).
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
from moto.cloudwatch.models import cloudwatch_backends
from moto.sns.models import sns_backends

from localaws.cloudwatch import history
from localaws.iam.authorizer import Authorizer, Denied, Need
from localaws.iam.policy import PolicyError
from localaws.events.targets import alarm_state_change

COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
STATISTICS = {
    "Maximum": np.max, "Minimum": np.min, "Sum": np.sum, "Average": np.mean, "SampleCount": len,
}


def statistic(values: list[float], alarm) -> float:
    if alarm.statistic:
        return float(STATISTICS[alarm.statistic](values))
    percentile = float(alarm.extended_statistic.removeprefix("p"))  # e.g. p99
    return float(np.percentile(values, percentile))


def by_metric(backend) -> dict[tuple[str, str], list]:
    """The backend's datapoints per (namespace, metric name): each alarm reads only its own."""
    grouped: dict[tuple[str, str], list] = {}
    for datum in list(backend.metric_data):
        grouped.setdefault((datum.namespace, datum.name), []).append(datum)
    return grouped


def evaluate(backend, alarm, now: datetime, data: dict[tuple[str, str], list] | None = None) -> tuple[str, str] | None:
    """(new state, reason) for `alarm`, or None to keep its state; `data`: by_metric(backend)."""
    if not alarm.metric_name or alarm.comparison_operator not in COMPARE:
        return None  # metric-math and anomaly-detection alarms are not evaluated offline
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    periods: dict[int, list[float]] = {}
    oldest = now - timedelta(seconds=alarm.period * alarm.evaluation_periods)
    for datum in (data if data is not None else by_metric(backend)).get((alarm.namespace, alarm.metric_name), []):
        when = datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=timezone.utc)
        if oldest < when <= now and {(d.name, d.value) for d in datum.dimensions} == wanted:
            periods.setdefault(int(when.timestamp()) // alarm.period, []).append(datum.value)
    if not periods:
        treat = alarm.treat_missing_data or "missing"
        return {"ignore": None, "notBreaching": ("OK", "no datapoints: treated as not breaching"),
                "breaching": ("ALARM", "no datapoints: treated as breaching"),
                "missing": ("INSUFFICIENT_DATA", "no datapoints")}[treat]
    values = [statistic(v, alarm) for _, v in sorted(periods.items())]
    breaching = [v for v in values if COMPARE[alarm.comparison_operator](v, alarm.threshold)]
    needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods)
    shown = ", ".join(f"{v:g}" for v in values)
    # Periods without data count as the alarm says: good, bad, or (missing, ignore) not at all.
    treat, absent = alarm.treat_missing_data or "missing", alarm.evaluation_periods - len(values)
    bad = len(breaching) + (absent if treat == "breaching" else 0)
    if bad >= (needed if treat in ("breaching", "notBreaching") else min(needed, len(values))):
        return "ALARM", f"Threshold Crossed: {len(breaching)} datapoint(s) [{shown}] {alarm.comparison_operator} {alarm.threshold:g}"
    return "OK", f"Threshold not crossed: datapoint(s) [{shown}] vs {alarm.comparison_operator} {alarm.threshold:g}"


# One evaluation at a time in this process: the background thread and a direct call (the
# tests make them) would both see the old state and act on the same change twice.
_EVALUATING = threading.Lock()


class AlarmEvaluator:
    def __init__(self, authorizer: Authorizer, interval: float = 0.5) -> None:
        self._authorizer, self.interval = authorizer, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.evaluate_all()

    def evaluate_all(self, now: datetime | None = None) -> None:
        with _EVALUATING:
            self._evaluate_all(now or datetime.now(timezone.utc))

    def _evaluate_all(self, now: datetime) -> None:
        for account, region, backend in list(cloudwatch_backends.iter_backends()):
            data = by_metric(backend)
            for alarm in list(backend.alarms.values()):
                outcome = evaluate(backend, alarm, now, data)
                if outcome is None or outcome[0] == alarm.state_value:
                    continue
                old, (state, reason) = alarm.state_value, outcome
                backend.set_alarm_state(alarm.name, reason, json.dumps({"evaluated": now.isoformat()}), state)
                alarm_state_change(account, region, alarm, old, state, reason, now)
                actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions}.get(state) or []
                if alarm.actions_enabled:
                    for arn in actions:
                        try:
                            self._notify(account, region, arn, alarm, old, state, reason, now)
                        except (Denied, PolicyError) as refused:  # CloudWatch records the failure and goes on
                            history.record(backend, alarm.name, "Action", f"Failed to execute action {arn}. Received error: \"{refused}\"",
                                           {"actionState": "Failed", "notificationResource": arn})
                        else:
                            history.record(backend, alarm.name, "Action", f"Successfully executed action {arn}", {"actionState": "Succeeded", "notificationResource": arn})

    def _notify(self, account: str, region: str, arn: str, alarm, old: str, state: str, reason: str, now: datetime) -> None:
        """Publish as CloudWatch does: as cloudwatch.amazonaws.com, which the topic's policy and
        (an encrypted topic) its key's policy must allow (SNS developer guide, "Enable
        compatibility between event sources from AWS services and encrypted topics")."""
        if ":sns:" not in arn:
            return
        topic_region = arn.split(":")[3]
        # SNS's default topic policy tests the older AWS:SourceOwner key.
        context = {"aws:sourcearn": [alarm.alarm_arn], "aws:sourceaccount": [account], "aws:sourceowner": [account]}
        needs = [Need("sns:Publish", arn, context)]
        topic = sns_backends[account][topic_region].topics.get(arn)
        if topic is not None and topic.kms_master_key_id:
            key = self._authorizer.kms_key_arn(topic_region, topic.kms_master_key_id)
            needs += [Need("kms:GenerateDataKey", key, context), Need("kms:Decrypt", key, context)]
        self._authorizer.authorize_service("cloudwatch.amazonaws.com", needs)
        _publish(account, region, arn, alarm, old, state, reason, now)


def _publish(account: str, region: str, arn: str, alarm, old: str, state: str, reason: str, now: datetime) -> None:
    message = {
        "AlarmName": alarm.name, "AlarmDescription": alarm.description, "AWSAccountId": account, "Region": region,
        "NewStateValue": state, "NewStateReason": reason, "OldStateValue": old, "StateChangeTime": now.isoformat(),
        "AlarmArn": alarm.alarm_arn,
    }
    topic_region = arn.split(":")[3]
    sns_backends[account][topic_region].publish(json.dumps(message), arn=arn, subject=f'{state}: "{alarm.name}" in {region}')
