"""Step 08 — Drift monitoring: a baseline, a clean window, an injected drift, the alarm.

What you do: run `python lab_scripts/08_monitor_drift.py [--requests 10] [--drift amount_x3,new_category,missing_feature]`.
What you see: the baseline (statistics.json and constraints.json, Model Monitor's formats)
computed from the training features by a Processing job; normal traffic sent to the
endpoint and the drift monitor run on it at once (no waiting for the hourly schedule):
no violations, the alarm OK. Then payments with injected drift -- amounts x3, a merchant
category never seen in training, a feature sent empty -- and the monitor names each one
(baseline_drift_check, categorical_values_check, completeness_check), the violation
metric crosses the alarm threshold and the alarm goes to ALARM; its SNS notification is
shown as the alerts inbox received it (an SQS queue subscribed to the alerts topic). The
alarm's state change also reaches EventBridge, whose rule (the monitoring stack's
RetrainOnDrift) starts the training pipeline of step 07: this step finds that execution
and follows it to its end -- drift -> retrain -> gate -> register, the new model version
waiting for a person's approval (--no-retrain-wait: only show that it started).

Normal traffic is a random sample of training-period payments. Try `--traffic recent`
(the newest payments) to see a real drift the monitor flags too: customer-history features
are larger late in the data, when 30-day windows have filled up -- a baseline from the
first weeks of a data set describes a warm-up that production never sees again.

Model Monitor path (-c fraudlab:driftMonitor=modelMonitor, for accounts that still have
Model Monitor): the same baseline (model-monitor/ variant) is used by AWS's schedule at the
top of each hour; this step shows that schedule and does not run the kit's job.

Where to look: S3 monitoring/baseline/ and monitoring/reports/<endpoint>/yyyy/mm/dd/hh/<job>/;
CloudWatch > Metrics > FraudLab (constraint_violations, feature_baseline_drift_*);
CloudWatch > Alarms > the DriftAlarmName output (its History tab); SNS > Topics > the alerts
topic > Subscriptions; SQS > Queues > the AlertsInboxUrl output; EventBridge > Scheduler >
FraudLab-DriftMonitor; EventBridge > Rules > the RetrainRuleName output (Monitoring tab);
SageMaker Studio > Pipelines > the retraining execution.

Exam task statements: MLA-C01 4.1 (monitor model inference: data capture, drift, baselines),
4.2 (monitor and optimize infrastructure: CloudWatch metrics and alarms), 4.3 (secure:
VPC, KMS-encrypted topic), 3.3 (retraining triggered by the drift alarm); MLS-C01 4.1 (build ML solutions for availability: monitoring),
4.4 (operationalize: monitoring deployed models).
"""
from __future__ import annotations

import argparse
import textwrap
import json
import time
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import numpy as np
import pandas as pd
from dateutil import parser as dates

from labkit import console, drift, polling, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.outputs import lab_outputs, stack_outputs, stack_prefix
from labkit.pipelines import follow, show_execution
from labkit.sagemaker import CONTAINER, ROOT, feature_schema, isolated_processing_job, job_name, read_pointer, s3_input, upload_code, wait_for_job, write_pointer
from labkit.session import aws_session, client, each
from labkit.traffic import features_of, landed_history, release_freed_memory, send
from processing import drift_monitor
from processing.features import FEATURE_COLUMNS

BASELINE_POINTER = "monitoring/baseline/source.json"
# An hourly window holds one hour of the day and one kind of day: these features drift
# by the clock, not because the data changed, so their distributions are not compared.
CLOCK_FEATURES = ("hour_of_day", "is_weekend", "is_night")


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--requests", type=int, default=10, help="requests of 100 payments per window")
    parser.add_argument("--drift", default=",".join(drift.KINDS), help=f"comma-separated: {', '.join(drift.KINDS)}")
    parser.add_argument("--traffic", choices=("training", "recent"), default="training", help="what normal traffic is")
    parser.add_argument("--rerun", action="store_true", help="recompute the baseline even if it is current")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for capture, the alarm and the retraining to start")
    parser.add_argument("--no-retrain-wait", action="store_true", help="show that the alarm started the retraining, without following it")
    args = parser.parse_args()
    args.drift = [k for k in args.drift.split(",") if k]
    unknown = set(args.drift) - set(drift.KINDS)
    if unknown or not args.drift:
        parser.error(f"--drift takes {', '.join(drift.KINDS)}")
    if not 1 <= args.requests <= 200:
        parser.error("--requests must be 1-200")
    return args


def baseline_request(name: str, outputs: dict, monitoring: dict, features_job: str, code_uri: str) -> dict:
    bucket = outputs["LabBucketName"]
    return isolated_processing_job(
        name,
        outputs,
        role="Monitoring",
        script="drift_monitor.py",
        arguments=[
            "--mode", "baseline", "--reference", f"{CONTAINER}/input/reference", "--output", f"{CONTAINER}/output",
            "--comparison-threshold", monitoring["DriftThreshold"], "--uncompared", ",".join(CLOCK_FEATURES),
            "--uncompared-reason", "an hourly window holds one hour of the day: it drifts by the clock, not the data",
        ],
        inputs=[
            s3_input("code", code_uri, f"{CONTAINER}/input/code"),
            s3_input("reference", f"s3://{bucket}/features/{features_job}/baseline/", f"{CONTAINER}/input/reference"),
        ],
        results={"baseline": (f"s3://{bucket}/{monitoring['BaselinePrefix']}", f"{CONTAINER}/output")},
        instance_type="ml.m5.large",
        volume_gb=10,
        max_runtime_seconds=1800,
    )


def ensure_baseline(session, outputs: dict, monitoring: dict, rerun: bool) -> dict:
    s3, sagemaker = client(session, "s3"), client(session, "sagemaker")
    bucket = outputs["LabBucketName"]
    features = read_pointer(s3, bucket, "features/latest.json")
    if features is None:
        raise LabError("no features yet: run lab_scripts/02_feature_engineering.py first")
    current = read_pointer(s3, bucket, BASELINE_POINTER)
    if current and current["features_job"] == features["job"] and current["threshold"] == monitoring["DriftThreshold"] and not rerun:
        console.heading(f"Baseline: reusing {current['job']} (from {features['job']}; --rerun for a new one)")
    else:
        name = job_name("fraudlab-baseline")
        console.heading(f"Baseline job {name}: statistics and constraints of {features['job']}'s training features")
        code_uri = upload_code(s3, bucket, ROOT / "processing", ("drift_monitor.py",))
        sagemaker.create_processing_job(**baseline_request(name, outputs, monitoring, features["job"], code_uri))
        wait_for_job(lambda n: sagemaker.describe_processing_job(ProcessingJobName=n), name, "ProcessingJobStatus")
        current = {"job": name, "features_job": features["job"], "threshold": monitoring["DriftThreshold"]}
        write_pointer(s3, bucket, BASELINE_POINTER, current)
    prefix = monitoring["BaselinePrefix"]
    constraints = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}constraints.json")["Body"].read())
    statistics = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}statistics.json")["Body"].read())
    compared = [f for f in constraints["features"] if f.get("monitoringConfigOverrides", {}).get("perform_comparison") != "Disabled"]
    groups = [f for f in constraints["features"] if "one_hot_columns" in f]
    console.done(
        f"{statistics['dataset']['item_count']:,} training rows, {len(constraints['features'])} features checked, "
        f"drift threshold {constraints['monitoring_config']['distribution_constraints']['comparison_threshold']}"
    )
    # Why the count differs from step 02's, in words (the learner compares them).
    console.note(
        f"the model's {len(constraints['features']) - len(groups)} columns"
        + "".join(f", plus `{g['name']}`: its {len(g['one_hot_columns'])} one-hot columns read back as one feature, so an unseen value is named" for g in groups)
    )
    uncompared = [f for f in constraints["features"] if f not in compared]
    if uncompared:
        reasons = sorted({f["monitoringConfigOverrides"].get("reason", "") for f in uncompared})
        console.note(
            f"{len(compared)} compared for drift; {', '.join(f['name'] for f in uncompared)} only for type and completeness: {'; '.join(reasons)}"
        )
    console.table(
        [(f["name"], f["inferred_type"], f"{f['completeness']:.2f}", "no (clock)" if f not in compared else "yes") for f in constraints["features"][:8]]
        + [("...", "", "", "")],
        ("feature", "type", "completeness", "drift compared"),
    )
    console.note(f"s3://{bucket}/{prefix}: statistics.json, constraints.json, reference.csv, model-monitor/ (columns as _c0.._c{len(FEATURE_COLUMNS) - 1})")
    return current


def wait_for_capture(s3, bucket: str, prefix: str, start: datetime, end: datetime, expected: int, timeout: float) -> None:
    """Data capture lands in S3 in batches (minutes on AWS): wait until every request is there."""
    started, waits = time.monotonic(), polling.intervals()
    while True:
        lines = drift_monitor.read_s3_capture(s3, bucket, prefix, start, end)
        _, _, captured = drift_monitor.parse_capture(lines, start, end, FEATURE_COLUMNS)
        if captured >= expected:
            console.done(f"{captured} captured requests in S3 after {time.monotonic() - started:.0f} s")
            return
        if time.monotonic() - started > timeout:
            raise LabError(f"only {captured} of {expected} requests captured after {timeout:.0f} s: is data capture on (captureSamplingPercent)?")
        time.sleep(next(waits))


def run_monitor_now(session, monitoring: dict, start: datetime, end: datetime) -> str:
    """Start the schedule's own job request for [start, end), as the schedule would."""
    scheduler, sagemaker = client(session, "scheduler"), client(session, "sagemaker")
    schedule = scheduler.get_schedule(Name=monitoring["ScheduleName"])
    name = job_name("fraudlab-drift-now")
    text = schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", end.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    request = json.loads(text)
    request["ProcessingJobName"] = name
    request["AppSpecification"]["ContainerArguments"] += ["--window-start", start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")]
    sagemaker.create_processing_job(**request)
    wait_for_job(lambda n: sagemaker.describe_processing_job(ProcessingJobName=n), name, "ProcessingJobStatus")
    return name


def report(s3, bucket: str, reports_prefix: str, endpoint: str, job: str, end: datetime) -> tuple[str, dict]:
    folder = f"{reports_prefix}{endpoint}/{end:%Y/%m/%d/%H}/{job}/"
    read = lambda name: json.loads(s3.get_object(Bucket=bucket, Key=folder + name)["Body"].read())  # noqa: E731
    found = {"result": read("result.json"), "metrics": read("metrics.json")}
    if found["result"]["outcome"] != "NoData":
        found["violations"] = read("constraint_violations.json")["violations"]
    return f"s3://{bucket}/{folder}", found


def distances(found: dict) -> dict[str, float]:
    """Each compared feature's drift distance in the report's metrics."""
    prefix = drift_monitor.METRIC_PREFIX
    return {m["MetricName"].removeprefix(prefix): m["Value"] for m in found["metrics"] if m["MetricName"].startswith(prefix)}


def show(found: dict, threshold: float) -> None:
    result = found["result"]
    if result["outcome"] == "NoData":
        console.failed(result["message"])
        return
    console.done(f"{result['outcome']}: {result['rows']:,} payments in {result['captured_requests']} requests, {result['violations']} violations")
    if found["violations"]:
        console.table(
            [(v["feature_name"], v["constraint_check_type"], textwrap.shorten(v["description"], 90, placeholder=" ...")) for v in found["violations"]],
            ("feature", "check", "description"),
        )
    drifts = sorted(distances(found).items(), key=lambda item: -item[1])
    console.table([(f, f"{v:.3f}", "over" if v > threshold else "") for f, v in drifts[:5]], ("feature", "drift distance", f"threshold {threshold}"))


def wait_for_alarm(cloudwatch, name: str, state: str, since: datetime, timeout: float) -> dict:
    """CloudWatch evaluates alarms about once a minute: poll until it reaches `state`, saying
    what it shows meanwhile (a state older than `since` is the verdict of an earlier run)."""
    started, last, waits, told = time.monotonic(), None, polling.intervals(), time.monotonic()
    while True:
        alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        updated = alarm["StateUpdatedTimestamp"]
        earlier = updated < since
        if alarm["StateValue"] != last:
            when = f"since {updated:%H:%M:%S} UTC, an earlier run's verdict" if earlier else f"at {updated:%H:%M:%S} UTC"
            console.note(f"alarm {name}: {alarm['StateValue']} {when} ({textwrap.shorten(alarm.get('StateReason', ''), 160, placeholder=' ...')})")
            last, told = alarm["StateValue"], time.monotonic()
        if last == state:
            return alarm
        if earlier and state == "OK" and last == "ALARM":
            # A rerun: the earlier run's drift datapoint decides the alarm until its period
            # has passed. This window's own verdict is its report; waiting would add a minute.
            clears = updated + timedelta(seconds=alarm["Period"])
            console.note(
                f"not waiting for OK: the earlier run's datapoint holds {name} in ALARM until its {alarm['Period']} s "
                f"period passes (about {clears:%H:%M:%S} UTC); this window's verdict is the report above"
            )
            return alarm
        waited = time.monotonic() - started
        if waited > timeout:
            raise LabError(f"alarm {name} still {last} after {timeout:.0f} s (expected {state}): see CloudWatch > Alarms")
        if time.monotonic() - told >= polling.PROGRESS_SECONDS:
            console.note(
                f"still {last} after {waited:.0f} s: CloudWatch keeps each period's Maximum, so an earlier datapoint in the "
                f"period decides until the period passes; waiting for {state} (at most {timeout - waited:.0f} s more)"
            )
            told = time.monotonic()
        time.sleep(next(waits))


def show_notification(sqs, inbox_url: str, alarm_name: str, state: str, since: datetime, timeout: float = 60) -> dict | None:
    """The alarm's SNS notification, read from the alerts inbox (an SQS queue subscribed to
    the topic, as an email subscription would receive it). Every message read is deleted, so
    a rerun sees only its own."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        messages = sqs.receive_message(QueueUrl=inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=inbox_url, ReceiptHandle=message["ReceiptHandle"])
        for message in messages:
            envelope = json.loads(message["Body"])  # SNS's envelope; the alarm's JSON is its Message
            alarm = json.loads(envelope["Message"])
            changed = dates.parse(alarm["StateChangeTime"])
            if alarm.get("AlarmName") == alarm_name and alarm.get("NewStateValue") == state and changed >= since:
                console.done(f"SNS notification read from the alerts inbox: {envelope.get('Subject', '')}")
                console.note(f"{alarm['OldStateValue']} -> {alarm['NewStateValue']} at {changed:%H:%M:%S} UTC: {textwrap.shorten(alarm['NewStateReason'], 160, placeholder=' ...')}")
                return alarm
    console.warn(f"no {state} notification of {alarm_name} in the alerts inbox after {timeout:.0f} s: see SNS > Topics > the alerts topic > Subscriptions")
    return None


def retraining(sagemaker, pipeline: str, since: datetime, timeout: float) -> dict | None:
    """The pipeline execution the drift alarm started (EventBridge delivers the alarm's state
    change to the rule within seconds), or None if none started within `timeout`."""
    started, waits = time.monotonic(), polling.intervals()
    while time.monotonic() - started < timeout:
        executions = each(sagemaker, "list_pipeline_executions", "PipelineExecutionSummaries", PipelineName=pipeline)
        new = [e for e in executions if e["StartTime"] >= since]
        if new:
            return max(new, key=lambda e: e["StartTime"])
        time.sleep(next(waits))
    return None


def payments_to_send(s3, bucket: str, raw_prefix: str, args) -> list[tuple[str, np.ndarray, list[str]]]:
    """(window, feature rows, drift kinds injected) of the clean and the drifted window,
    computed client-side from the landed history as step 06 does. The history is freed when
    this returns: the step then waits for the monitor, the alarm and the retraining."""
    history, labels = landed_history(s3, bucket, raw_prefix)
    schema = feature_schema(s3, bucket)
    rng = np.random.default_rng(7)
    count = args.requests * 100
    if args.traffic == "training":
        # The baseline is the training period's features: sample the same period (not its gap).
        pool = history.index[history["timestamp"] < pd.Timestamp(schema["split"]["periods"]["gap_1"])]
        clean_rows, drift_rows = (pd.Index(np.sort(rng.choice(pool, size=min(count, len(pool) // 2), replace=False))) for _ in range(2))
    else:
        clean_rows = drift_rows = history.index[-count:]
    console.done(f"{len(history):,} payments of history; {len(clean_rows):,} per window ({args.traffic} traffic)")
    delay = schema["label_delay_days"]
    return [(label, drift.features_for(history, labels, rows, kinds, delay) if kinds else features_of(history, labels, rows, delay), kinds)
            for label, rows, kinds in (("clean", clean_rows, []), ("drifted", drift_rows, args.drift))]


# A NamedTuple, not a dataclass: as step 04's Evaluated, for the tests that load the step.
class Lab(NamedTuple):
    """What the parts share: the lab's and the monitoring stack's outputs, the endpoint, the clients."""

    session: object
    outputs: dict
    monitoring: dict  # the monitoring stack's outputs
    endpoint: str
    threshold: float  # the drift distance that counts as drift
    s3: object
    runtime: object
    cloudwatch: object

    @property
    def bucket(self) -> str:
        return self.outputs["LabBucketName"]


def deployed(session) -> Lab:
    """The endpoint and its monitoring stack, or what to run first."""
    outputs = lab_outputs(session, "LabBucketName", "RawPrefix", "MonitoringRoleArn", "KeyArn", "SubnetIds", "SecurityGroupId", "XgboostImageUri", "PipelineName")
    endpoint = stack_outputs(session, f"{stack_prefix()}-Endpoint").get("EndpointName")
    if endpoint is None:
        raise LabError("no endpoint yet: run lab_scripts/05_deploy_endpoint.py first")
    monitoring = stack_outputs(session, f"{stack_prefix()}-Monitoring")
    if not monitoring:
        raise LabError(f"no {stack_prefix()}-Monitoring stack: it deploys with the endpoint (cdk deploy --all -c fraudlab:modelPackageArn=<arn>) unless fraudlab:driftMonitor=off or serverless")
    threshold = float(monitoring["DriftThreshold"])
    return Lab(session, outputs, monitoring, endpoint, threshold, *(client(session, s) for s in ("s3", "sagemaker-runtime", "cloudwatch")))


def model_monitor_schedule(lab: Lab) -> None:
    """The Model Monitor path: AWS's schedule runs the monitor; this step only shows it."""
    described = client(lab.session, "sagemaker").describe_monitoring_schedule(MonitoringScheduleName=lab.monitoring["ScheduleName"])
    console.heading(f"Model Monitor schedule {described['MonitoringScheduleName']}: {described['MonitoringScheduleStatus']}")
    console.note(f"runs {described['MonitoringScheduleConfig']['ScheduleConfig']['ScheduleExpression']}; reports under s3://{lab.bucket}/{lab.monitoring['ReportsPrefix']}")
    results.record(f"Model Monitor schedule {described['MonitoringScheduleStatus']}", mode="modelMonitor")


def traffic_windows(lab: Lab, args) -> list[tuple[str, np.ndarray, list[str]]]:
    """The clean and the drifted window's payments (see payments_to_send)."""
    console.heading("Payments to send: features computed client-side, as in step 06")
    windows = payments_to_send(lab.s3, lab.bucket, lab.outputs["RawPrefix"], args)
    release_freed_memory()  # the history behind them
    return windows


def monitored_window(lab: Lab, values: np.ndarray, kinds: list[str], timeout: float) -> dict:
    """One window: its payments sent to the endpoint, the drift monitor run on them at once,
    then the alarm (and its notification) as the report's verdict moves it."""
    console.heading(f"Inject drift: {'; '.join(drift.KINDS[k] for k in kinds)}" if kinds else "Normal traffic")
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    requests = send(lab.runtime, lab.endpoint, values)
    end = datetime.now(timezone.utc) + timedelta(seconds=1)
    console.done(f"{len(values):,} payments sent in {requests} requests to {lab.endpoint}")
    wait_for_capture(lab.s3, lab.bucket, f"capture/{lab.endpoint}/AllTraffic", start, end, requests, timeout)

    console.heading(f"Run the drift monitor now on {start:%H:%M:%S}-{end:%H:%M:%S} UTC (the schedule's own job request)")
    job = run_monitor_now(lab.session, lab.monitoring, start, end)
    where, found = report(lab.s3, lab.bucket, lab.monitoring["ReportsPrefix"], lab.endpoint, job, end)
    show(found, lab.threshold)
    console.note(f"reports: {where}")
    alarm, held = alarm_and_notification(lab, found, start, timeout)
    return {"violations": found["result"].get("violations", 0), "alarm": alarm["StateValue"], "held": held, "since": start,
            "distances": distances(found) if found["result"]["outcome"] != "NoData" else {},
            "checks": sorted({(v["feature_name"], v["constraint_check_type"]) for v in found.get("violations", [])})}


def alarm_and_notification(lab: Lab, found: dict, start: datetime, timeout: float) -> tuple[dict, bool]:
    """The drift alarm in the state the report calls for (ALARM on violations), and its SNS
    notification if it changed: (the alarm, whether it held an earlier run's state)."""
    expected_state = "ALARM" if found["result"].get("violations") else "OK"
    alarm = wait_for_alarm(lab.cloudwatch, lab.monitoring["DriftAlarmName"], expected_state, start, timeout)
    held = alarm["StateUpdatedTimestamp"] < start  # still the earlier run's state
    if expected_state == "ALARM" and held:
        console.note("no new notification: the alarm was in ALARM already, and alarms notify on state changes only")
    elif expected_state == "ALARM" and lab.outputs.get("AlertsInboxUrl"):
        show_notification(client(lab.session, "sqs"), lab.outputs["AlertsInboxUrl"], lab.monitoring["DriftAlarmName"], "ALARM", start)
    return alarm, held


def every_drift_named(figures: dict, args) -> None:
    """Clean traffic raised nothing and every injected drift was named, or the step fails."""
    if figures["clean"]["violations"] and args.traffic == "training":
        raise LabError(f"clean traffic raised {figures['clean']['violations']} violations: see its constraint_violations.json")
    missed = [k for k in args.drift if drift.EXPECTED[k] not in set(map(tuple, figures["drifted"]["checks"]))]
    if missed:
        raise LabError(f"injected drift not detected: {', '.join(missed)}")
    shown = {label: f"{f['alarm']} (the earlier run's)" if f["held"] else f["alarm"] for label, f in figures.items()}
    console.done(f"every injected drift named; alarm {shown['clean']} -> {shown['drifted']}")


def retrain_on_drift(lab: Lab, drifted: dict, args) -> dict:
    """The retraining the alarm's state change started, followed (none if the alarm did not change)."""
    if drifted["held"]:
        console.note("no retraining started: the alarm was in ALARM already, and EventBridge receives state changes only")
    elif drifted["alarm"] == "ALARM":
        return follow_retraining(lab.session, lab.outputs, lab.monitoring, drifted["since"], args)
    return {}


def record(figures: dict, retrained: dict, threshold: float) -> None:
    retrain_status = retrained.get("execution_status", "not started")
    results.record(
        f"clean: {figures['clean']['violations']} violations; drift: {figures['drifted']['violations']} violations, alarm {figures['drifted']['alarm']}; "
        f"retraining {retrain_status}, model {retrained.get('approval', 'not registered')}",
        retraining=retrained,
        clean_violations=figures["clean"]["violations"], drift_violations=figures["drifted"]["violations"],
        alarm_state=figures["drifted"]["alarm"], detected=",".join(f"{f}:{c}" for f, c in figures["drifted"]["checks"]),
        drift_threshold=threshold, drift_distances={label: f["distances"] for label, f in figures.items()},
    )


def follow_retraining(session, outputs: dict, monitoring: dict, since: datetime, args) -> dict:
    """Drift -> retrain: the execution the alarm started, followed to its end (or only named)."""
    sagemaker = client(session, "sagemaker")
    rule = monitoring.get("RetrainRuleName", "RetrainOnDrift")
    console.heading(f"Drift -> retrain: EventBridge rule {rule} starts {outputs['PipelineName']}")
    execution = retraining(sagemaker, outputs["PipelineName"], since, args.timeout)
    if execution is None:
        console.warn(f"no execution of {outputs['PipelineName']} started within {args.timeout:.0f} s: see EventBridge > Rules > {rule} > Monitoring")
        return {}
    arn = execution["PipelineExecutionArn"]
    console.done(f"{arn} started at {execution['StartTime']:%H:%M:%S} UTC")
    if args.no_retrain_wait:
        return {"execution_arn": arn, "execution_status": execution["PipelineExecutionStatus"]}
    clock = time.monotonic()
    described, steps = follow(sagemaker, arn)
    return show_execution(sagemaker, client(session, "s3"), described, steps, time.monotonic() - clock, margin=None)


def main() -> int:
    args = parse_args()
    lab = deployed(aws_session())
    ensure_baseline(lab.session, lab.outputs, lab.monitoring, args.rerun)
    if lab.monitoring["MonitorMode"] == "modelMonitor":
        model_monitor_schedule(lab)
        return 0

    windows = traffic_windows(lab, args)  # normal traffic, then the same with drift injected
    figures = {label: monitored_window(lab, values, kinds, args.timeout) for label, values, kinds in windows}
    every_drift_named(figures, args)
    retrained = retrain_on_drift(lab, figures["drifted"], args)
    record(figures, retrained, lab.threshold)
    return 0


if __name__ == "__main__":
    run_step(main)
