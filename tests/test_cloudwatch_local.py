"""CloudWatch offline: alarms evaluated as CloudWatch does, and their history."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends

from localaws.cloudwatch.alarms import evaluate
from localaws.server import ACCOUNT_ID


def latency_alarm(cloudwatch, name: str, treat_missing_data: str) -> None:
    """The endpoint stack's latency alarm: p99 over 1-minute periods, 3 of 3 to alarm."""
    cloudwatch.put_metric_alarm(
        AlarmName=name, Namespace="Test/Local", MetricName=name, Dimensions=[{"Name": "EndpointName", "Value": "e"}],
        ExtendedStatistic="p99", Period=60, EvaluationPeriods=3, Threshold=100_000,
        ComparisonOperator="GreaterThanThreshold", TreatMissingData=treat_missing_data,
    )
    slow = datetime.now(timezone.utc) - timedelta(seconds=5)
    cloudwatch.put_metric_data(Namespace="Test/Local", MetricData=[
        {"MetricName": name, "Dimensions": [{"Name": "EndpointName", "Value": "e"}], "Timestamp": slow, "Values": [250_000.0], "Counts": [3.0]},
    ])


def test_one_slow_minute_of_three_alarms_only_when_missing_minutes_count_as_breaching(local_aws):
    """Regression: one breaching minute of a 3-of-3 alarm raised it whatever TreatMissingData
    said; CloudWatch counts the two minutes without data as good under notBreaching."""
    server, _ = local_aws
    cloudwatch = server.session().client("cloudwatch")
    backend = cloudwatch_backends[ACCOUNT_ID][server.region]
    now = datetime.now(timezone.utc)
    expected = {"notBreaching": "OK", "breaching": "ALARM", "missing": "ALARM", "ignore": "ALARM"}
    for treat, state in expected.items():
        latency_alarm(cloudwatch, f"slow-minute-{treat}", treat)
        assert evaluate(backend, backend.alarms[f"slow-minute-{treat}"], now)[0] == state, treat


def test_alarm_history_shows_creation_state_changes_and_notifications(local_aws):
    """Regression: `aws cloudwatch describe-alarm-history` answered HTTP 500 (moto lacks it)."""
    server, _ = local_aws
    session = server.session()
    cloudwatch, sns = session.client("cloudwatch"), session.client("sns")
    topic = sns.create_topic(Name="history-test")["TopicArn"]
    # The datapoint first: the background evaluator may run as soon as the alarm exists, and
    # without data (notBreaching) it would record an extra change to OK (a flaky history).
    cloudwatch.put_metric_data(Namespace="Test/Local", MetricData=[{"MetricName": "errors", "Value": 2.0}])
    cloudwatch.put_metric_alarm(
        AlarmName="history-test", Namespace="Test/Local", MetricName="errors", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching", AlarmActions=[topic],
    )
    server.alarms.evaluate_all()

    items = cloudwatch.describe_alarm_history(AlarmName="history-test")["AlarmHistoryItems"]
    kinds = [item["HistoryItemType"] for item in items]
    assert kinds == ["Action", "StateUpdate", "ConfigurationUpdate"]  # newest first
    change = json.loads(items[1]["HistoryData"])
    assert (change["oldState"]["stateValue"], change["newState"]["stateValue"]) == ("INSUFFICIENT_DATA", "ALARM")
    assert items[1]["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    assert topic in items[0]["HistorySummary"]
    only_changes = cloudwatch.describe_alarm_history(AlarmName="history-test", HistoryItemType="StateUpdate", ScanBy="TimestampAscending")
    assert [i["HistoryItemType"] for i in only_changes["AlarmHistoryItems"]] == ["StateUpdate"]


def test_two_evaluations_at_once_record_one_state_change(local_aws, monkeypatch):
    """Regression: the background evaluator and a direct evaluate_all could both see
    INSUFFICIENT_DATA and act on the change to ALARM: two notifications (and two EventBridge
    events) for one change. Here the first evaluation to set the alarm's state is held until a
    second evaluate_all has started."""
    server, _ = local_aws
    cloudwatch = server.session().client("cloudwatch")
    topic = server.session().client("sns").create_topic(Name="race-test")["TopicArn"]
    cloudwatch.put_metric_data(Namespace="Test/Race", MetricData=[{"MetricName": "errors", "Value": 2.0}])
    held, second_started = threading.Event(), threading.Event()
    set_alarm_state = CloudWatchBackend.set_alarm_state

    def held_first(backend, name, *args):
        if name == "race-test" and not held.is_set():
            held.set()
            second_started.wait(5)
            time.sleep(0.2)  # the second evaluation, unless it waits its turn, runs meanwhile
        return set_alarm_state(backend, name, *args)

    monkeypatch.setattr(CloudWatchBackend, "set_alarm_state", held_first)
    cloudwatch.put_metric_alarm(
        AlarmName="race-test", Namespace="Test/Race", MetricName="errors", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
        AlarmActions=[topic],
    )
    first = threading.Thread(target=server.alarms.evaluate_all)
    first.start()
    assert held.wait(5)  # this call, or the background evaluator's, is setting the state
    second = threading.Thread(target=server.alarms.evaluate_all)
    second.start()
    second_started.set()
    first.join(10)
    second.join(10)
    history = cloudwatch.describe_alarm_history(AlarmName="race-test")["AlarmHistoryItems"]
    assert [item["HistoryItemType"] for item in history] == ["Action", "StateUpdate", "ConfigurationUpdate"], history


def test_an_alarm_notifies_an_encrypted_topic_only_if_its_key_lets_cloudwatch_in(local_aws):
    """CloudWatch publishes as cloudwatch.amazonaws.com, which no IAM policy can empower: an
    encrypted topic's key policy must name it (SNS developer guide). A key that only
    delegates to the account's IAM policies makes the action fail, and the history says so."""
    server, _ = local_aws
    session = server.session()
    cloudwatch, sns, kms = session.client("cloudwatch"), session.client("sns"), session.client("kms")
    root = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "kms:*", "Resource": "*"}
    service = {"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}
    outcomes = {}
    for name, statements in (("iam-only", [root]), ("cloudwatch-too", [root, service])):
        key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))["KeyMetadata"]["KeyId"]
        topic = sns.create_topic(Name=f"encrypted-{name}", Attributes={"KmsMasterKeyId": key})["TopicArn"]
        cloudwatch.put_metric_data(Namespace="Test/Encrypted", MetricData=[{"MetricName": name, "Value": 2.0}])
        cloudwatch.put_metric_alarm(
            AlarmName=f"encrypted-{name}", Namespace="Test/Encrypted", MetricName=name, Statistic="Sum", Period=60,
            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching", AlarmActions=[topic],
        )
        server.alarms.evaluate_all()
        actions = cloudwatch.describe_alarm_history(AlarmName=f"encrypted-{name}", HistoryItemType="Action")["AlarmHistoryItems"]
        outcomes[name] = [(json.loads(a["HistoryData"])["actionState"], a["HistorySummary"]) for a in actions]
    [(state, summary)] = outcomes["iam-only"]
    assert state == "Failed"
    assert "User: cloudwatch.amazonaws.com is not authorized to perform: kms:GenerateDataKey" in summary
    assert "because no resource-based policy allows" in summary
    assert [state for state, _ in outcomes["cloudwatch-too"]] == ["Succeeded"]
