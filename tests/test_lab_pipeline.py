"""Steps 01-08 end to end on the local AWS: features, training, registry, endpoint, scoring, the pipeline, drift."""
from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from labkit import drift
from processing import evaluation
from localaws.offline_lab import LabRun, deploy_endpoint_stack
from localaws.cloudwatch.alarms import evaluate
from localaws.server import ACCOUNT_ID
from moto.cloudwatch.models import cloudwatch_backends
from moto.sns.models import sns_backends
from localaws.cloudformation.synth import assembly_for
from tests.helpers import ROOT, isolated_env, outputs_of, run_step


def load_step(script: str):
    """A numbered lab script as a module (its name starts with a digit)."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py").replace("0", "step0", 1), ROOT / "lab_scripts" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pipeline(local_aws, tmp_path_factory):
    """A lab run as a learner would: steps 01-04, `cdk deploy` (endpoint, monitoring), 05-08
    (10k payments: the default 100k's model quality is tested in test_evaluation.py)."""
    server, _ = local_aws
    env, cwd = isolated_env(**server.environment()), tmp_path_factory.mktemp("pipeline")
    runs, recorded = {}, {}
    for script, args in (
        ("01_stream_transactions.py", ("--count", "10000", "--seed", "77")),
        ("02_feature_engineering.py", ()),
        ("03_train_model.py", ()),
        ("04_evaluate_and_register.py", ()),
        ("05_deploy_endpoint.py", ()),
        ("06_score_transactions.py", ("--count", "600", "--single", "100")),
        ("07_run_pipeline.py", ()),
        ("08_monitor_drift.py", ("--requests", "5")),
    ):
        if script == "05_deploy_endpoint.py":  # what make lab runs after step 04: `cdk deploy --all -c ...=<arn>`
            # The assembly for the ARN step 04 recorded: make lab's own, or the one it would
            # synthesize when the shared local AWS held other packages first (one synthesis).
            arn = results_of(cwd, "04_evaluate_and_register")["model_package_arn"]
            deploy_endpoint_stack(LabRun(server, env, cwd, assembly_for({"fraudlab:modelPackageArn": arn}), steps=None))
        runs[script] = run_step(script, env, *args, cwd=cwd)
        assert runs[script].returncode == 0, runs[script].stdout + runs[script].stderr
        recorded[script] = results_of(cwd, script.removesuffix(".py"))  # tests below rerun some steps
    runs["recorded"] = recorded
    return server, env, cwd, runs


def results_of(cwd, step: str) -> dict:
    return json.loads((cwd / "build/lab-results" / f"{step}.json").read_text())


CORRUPT = 20  # step 01's --corrupt default: malformed records sent along on purpose


def test_feature_step_quarantines_every_malformed_record_step_01_sent(pipeline):
    """Each of the fixture's own malformed records is quarantined under its reason or kept
    once as an identical copy (the shared bucket may hold other tests' records too: hence
    at least, never fewer)."""
    _, _, cwd, runs = pipeline
    out = runs["02_feature_engineering.py"].stdout
    assert "Completed" in out
    counted = {m.group(1): int(m.group(2)) for m in re.finditer(r"^  (\w+) +(\d+) +records ", out, re.M)}
    record_reasons = ("bad_json", "missing_field", "wrong_type", "negative_amount", "future_timestamp", "conflicting_duplicate", "duplicate")
    assert set(record_reasons) <= set(counted), counted
    assert sum(counted[r] for r in record_reasons) >= CORRUPT, counted
    assert results_of(cwd, "02_feature_engineering")["quarantined_records"] >= sum(counted[r] for r in record_reasons if r != "duplicate")


def test_model_beats_the_rule_and_is_approved(pipeline):
    server, _, cwd, runs = pipeline
    figures = results_of(cwd, "04_evaluate_and_register")
    assert figures["test_pr_auc"] >= figures["rule_pr_auc"] + 0.1  # the approval margin
    low, high = figures["test_pr_auc_interval"]
    assert low <= figures["test_pr_auc"] <= high
    assert figures["approval"] == "Approved"
    package = server.session().client("sagemaker").describe_model_package(ModelPackageName=figures["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["InferenceSpecification"]["Containers"][0]["Image"].endswith("sagemaker-xgboost:3.2-0")
    out = runs["04_evaluate_and_register.py"].stdout
    assert "accuracy rewards doing nothing" in out and "card precision@100" in out and "Hardest scenarios" in out


def test_evaluation_files_are_written(pipeline):
    _, _, cwd, _ = pipeline
    quality = json.loads((cwd / "build/evaluation/evaluation.json").read_text())
    metrics = quality["binary_classification_metrics"]
    assert {"pr_auc", "auc", "recall", "precision", "f1", "confusion_matrix"} <= set(metrics)
    for plot in ("pr_curve", "roc_curve", "confusion_matrix", "feature_importance"):
        assert (cwd / f"build/evaluation/{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_are_idempotent(pipeline):
    _, env, cwd, _ = pipeline
    again = run_step("03_train_model.py", env, cwd=cwd)
    assert again.returncode == 0 and "reusing" in again.stdout
    register = run_step("04_evaluate_and_register.py", env, cwd=cwd)
    assert register.returncode == 0 and register.stdout.count("model-package/fraudlab-fraud-detector/1: Approved") == 1


def test_tuning_trains_children_and_keeps_the_best(pipeline):
    server, env, cwd, _ = pipeline
    tuned = run_step("03_train_model.py", env, "--tune", "--rerun", cwd=cwd)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "best of 6 trainings" in tuned.stdout
    sagemaker = server.session().client("sagemaker")
    names = [j["TrainingJobName"] for j in sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]]
    assert sum("-00" in n for n in names) >= 6


def endpoint_name(server) -> str:
    stack = server.session().client("cloudformation").describe_stacks(StackName="FraudLab-Endpoint")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["EndpointName"]


def test_endpoint_scores_held_out_payments(pipeline):
    _, _, cwd, runs = pipeline
    figures = results_of(cwd, "06_score_transactions")
    # The shared bucket holds other tests' batches too, so only robust bounds here.
    assert figures["scored"] == 600 and figures["recall"] >= 0.5 and figures["precision"] > 0
    assert figures["latency_p50_ms"] > 0
    out = runs["06_score_transactions.py"].stdout
    assert "ModelError (400)" in out and "the next request is answered normally" in out
    assert "InService" in runs["05_deploy_endpoint.py"].stdout and "autoscaling: 1-2 instances" in runs["05_deploy_endpoint.py"].stdout


def test_a_day_in_batch_scores_exactly_as_the_endpoint(pipeline):
    """Issue 14 (batch transform): the transform job runs the endpoint's model through the
    real serving container with SageMaker's batching; its scores equal the endpoint's."""
    server, _, cwd, runs = pipeline
    figures = results_of(cwd, "06_score_transactions")
    assert figures["batch_rows"] > 100 and figures["batch_identical"] == figures["batch_rows"]
    out = runs["06_score_transactions.py"].stdout
    assert "probabilities identical to the endpoint's" in out and "real-time endpoint, 1 x ml.m5.large, up all day" in out
    sagemaker, s3 = server.session().client("sagemaker"), server.session().client("s3")
    job = sagemaker.describe_transform_job(TransformJobName=figures["batch_job"])
    assert job["TransformJobStatus"] == "Completed" and job["TransformEndTime"] >= job["TransformStartTime"]
    assert job["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-2]"}
    bucket, key = job["TransformOutput"]["S3OutputPath"].removeprefix("s3://").rstrip("/").split("/", 1)
    written = s3.get_object(Bucket=bucket, Key=f"{key}/payments.csv.out")
    assert written["ServerSideEncryption"] == "aws:kms" and written["SSEKMSKeyId"] == job["TransformOutput"]["KmsKeyId"]
    first = written["Body"].read().decode().splitlines()[0].split(",")
    assert first[0].startswith("TXN-") and len(first) == 2 and 0 <= float(first[1]) <= 1  # id and probability only


def test_invoke_endpoint_through_boto3_returns_real_predictions(pipeline):
    server, _, _, _ = pipeline
    runtime = server.session().client("sagemaker-runtime")
    row = ",".join(["0"] * 25)
    response = runtime.invoke_endpoint(EndpointName=endpoint_name(server), ContentType="text/csv", Accept="text/csv", Body=f"{row}\n{row}")
    lines = response["Body"].read().decode().split()
    assert len(lines) == 2 and all(0 <= float(line.split(",")[0]) <= 1 for line in lines)
    # Flask in the real container adds the charset: "text/csv; charset=utf-8".
    assert response["ContentType"].split(";")[0] == "text/csv" and response["InvokedProductionVariant"] == "AllTraffic"


def test_invoke_endpoint_answers_the_same_on_the_runtime_host_and_the_shared_url(pipeline):
    server, _, _, _ = pipeline
    row = ",".join(["0"] * 25)
    replies = []
    for url in (server.runtime_url, server.endpoint_url):
        runtime = server.session().client("sagemaker-runtime", endpoint_url=url)
        replies.append(runtime.invoke_endpoint(EndpointName=endpoint_name(server), ContentType="text/csv", Accept="application/json", Body=row)["Body"].read())
    assert replies[0] == replies[1] and json.loads(replies[0])["predictions"]
    assert server.environment()["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == server.runtime_url


def test_the_endpoint_container_runs_as_the_model_asks(pipeline):
    """describe_model reports what the template set, and the container gets exactly that:
    the Model's Environment, and no network (a namespace of its own) under network isolation."""
    server, _, _, _ = pipeline
    sagemaker, name = server.session().client("sagemaker"), endpoint_name(server)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["EnableNetworkIsolation"] is True and model["VpcConfig"]["Subnets"]
    container = server.endpoints.hosted(server.region, name).container
    environ = dict(item.split("=", 1) for item in Path(f"/proc/{container.process.pid}/environ").read_text().split("\0") if "=" in item)
    assert environ["SAGEMAKER_PROGRAM"] == "inference.py" and environ["PIP_NO_INDEX"] == "true"
    assert not any(key.startswith("AWS_") for key in environ)  # isolated: no way to AWS, no credentials
    if container.isolation_note is None:
        assert os.readlink(f"/proc/{container.process.pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_malformed_and_unknown_requests_get_aws_shaped_errors(pipeline):
    server, _, _, _ = pipeline
    runtime = server.session().client("sagemaker-runtime")
    with pytest.raises(ClientError) as bad:
        runtime.invoke_endpoint(EndpointName=endpoint_name(server), ContentType="text/csv", Body="1,2,3")
    assert bad.value.response["Error"]["Code"] == "ModelError"
    assert bad.value.response["OriginalStatusCode"] == 400
    assert "expected 25" in bad.value.response["OriginalMessage"]
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="text/csv", Body="1")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"


def test_data_capture_lands_in_sagemaker_format_and_layout(pipeline, outputs):
    server, _, _, _ = pipeline
    server.endpoints.flush_all()
    s3, name = server.session().client("s3"), endpoint_name(server)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=outputs["LabBucketName"], Prefix=f"capture/{name}/")["Contents"]]
    pattern = re.compile(rf"^capture/{name}/AllTraffic/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/\d{{2}}-\d{{2}}-\d{{3}}-[0-9a-f-]{{36}}\.jsonl$")
    assert keys and all(pattern.match(k) for k in keys), keys[:3]
    lines = [json.loads(line) for k in keys for line in s3.get_object(Bucket=outputs["LabBucketName"], Key=k)["Body"].read().decode().splitlines()]
    assert len(lines) >= 100 + 5  # the single requests and the batches of step 06
    record = lines[0]
    assert record["eventVersion"] == "0" and set(record["eventMetadata"]) == {"eventId", "inferenceTime"}
    assert record["captureData"]["endpointInput"]["mode"] == "INPUT" and record["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert record["captureData"]["endpointOutput"]["mode"] == "OUTPUT" and record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert "predictions" in json.loads(record["captureData"]["endpointOutput"]["data"])


def test_approval_decision_both_ways():
    report = {"model": {"pr_auc": 0.62}, "rule_baseline": {"pr_auc": 0.30}}
    assert evaluation.approval_decision(report, margin=0.1)[0] == "Approved"
    status, reason = evaluation.approval_decision(report, margin=0.5)
    assert status == "PendingManualApproval" and "0.320 < 0.5" in reason


def test_drift_step_detects_each_injected_kind_and_the_alarm_notifies(pipeline, outputs):
    server, _, cwd, runs = pipeline
    figures = results_of(cwd, "08_monitor_drift")
    assert figures["clean_violations"] == 0 and figures["alarm_state"] == "ALARM"
    for feature, check in drift.EXPECTED.values():
        assert f"{feature}:{check}" in figures["detected"]
    # The alarm's state change reached the (KMS-encrypted) alerts topic.
    topic = sns_backends[ACCOUNT_ID][server.region].topics[outputs["AlertsTopicArn"]]
    alarm = server.session().client("cloudformation").describe_stacks(StackName="FraudLab-Monitoring")["Stacks"][0]["Outputs"]
    alarm_name = next(o["OutputValue"] for o in alarm if o["OutputKey"] == "DriftAlarmName")
    notes = [json.loads(message) for _, message, *_ in topic.sent_notifications]
    states = [n["NewStateValue"] for n in notes if n["AlarmName"] == alarm_name]
    assert states[-1] == "ALARM" and "OK" in states
    # The report files are where the step said.
    s3 = server.session().client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=outputs["LabBucketName"], Prefix="monitoring/reports/")["Contents"]]
    assert sum(k.endswith("constraint_violations.json") for k in keys) >= 2
    out = runs["08_monitor_drift.py"].stdout
    assert "No data" not in out
    # The notification as the learner sees it (regression: never shown), and the feature
    # count explained (regression: 25 in step 02, "26 features (23 compared)" here, no word why).
    assert f'SNS notification read from the alerts inbox: ALARM: "{alarm_name}"' in out and "OK -> ALARM at" in out, out
    assert "the model's 25 columns, plus `category`: its" in out and "23 compared for drift; hour_of_day, is_weekend, is_night only" in out, out


def test_the_drift_step_rerun_does_not_wait_for_the_alarm_and_says_it_is_an_earlier_runs(pipeline):
    """Regression: a rerun waited silently (283 s, then 46 s) for the previous run's ALARM to
    clear, and showed that stale ALARM as if the new clean traffic had raised it."""
    server, env, cwd, runs = pipeline
    # The earlier run's drift verdict, fresh whatever ran since (its datapoint decides the
    # alarm's one-minute window, as the pipeline's own run did when the rerun came at once).
    cloudwatch = server.session().client("cloudwatch")
    monitoring = server.session().client("cloudformation").describe_stacks(StackName="FraudLab-Monitoring")["Stacks"][0]["Outputs"]
    alarm = cloudwatch.describe_alarms(AlarmNames=[next(o["OutputValue"] for o in monitoring if o["OutputKey"] == "DriftAlarmName")])["MetricAlarms"][0]
    cloudwatch.put_metric_data(Namespace=alarm["Namespace"], MetricData=[
        {"MetricName": alarm["MetricName"], "Dimensions": alarm["Dimensions"], "Value": alarm["Threshold"] + 7},
    ])
    server.alarms.evaluate_all()
    assert cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["StateValue"] == "ALARM"
    rerun = run_step("08_monitor_drift.py", env, "--requests", "5", cwd=cwd)  # the first run's size
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "an earlier run's verdict" in rerun.stdout and "not waiting for OK: the earlier run's datapoint holds" in rerun.stdout
    assert "no new notification: the alarm was in ALARM already" in rerun.stdout
    assert "alarm ALARM (the earlier run's) -> ALARM (the earlier run's)" in rerun.stdout
    # It never sat out the earlier datapoint's period: a wait of 10 s or more says "still ... waiting for".
    assert "; waiting for OK" not in rerun.stdout and "; waiting for ALARM" not in rerun.stdout, rerun.stdout


def malformed_requests(count: int, seed: int = 13) -> list[tuple[bytes, str, str]]:
    """(body, content type, accept) triples, each wrong in one of many ways."""
    rng = random.Random(seed)
    width = 25
    number = lambda: repr(rng.uniform(-1e3, 1e3))  # noqa: E731
    makers = [
        lambda: (bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))), "text/csv", "application/json"),
        lambda: (",".join(number() for _ in range(rng.choice([1, 24, 26, 50]))).encode(), "text/csv", "text/csv"),
        lambda: (",".join(rng.choice(["abc", "1..2", "--3", "0x1G", "1e", "\u00e9"]) for _ in range(width)).encode(), "text/csv", "text/csv"),
        lambda: (",".join(rng.choice(["nan", "inf", "-inf", "1e999", "NaN"]) for _ in range(width)).encode(), "text/csv", "application/json"),
        lambda: (("\n".join(",".join(number() for _ in range(width)) for _ in range(3)) + "\n1,2").encode(), "text/csv", "text/csv"),
        lambda: (json.dumps({"instances": [[number()] * rng.randint(0, 30)]})[: rng.randint(1, 60)].encode(), "application/json", "application/json"),
        lambda: (json.dumps(rng.choice([[], {}, "x", 3, None, {"instances": "x"}, {"instances": [None]}, {"rows": []}])).encode(), "application/json", "application/json"),
        lambda: (json.dumps({"instances": [["1"] * width]}).encode(), "application/json", "application/json"),
        lambda: (("[" * rng.randint(100, 3000)).encode(), "application/json", "application/json"),
        lambda: (",".join(["0"] * width).encode(), rng.choice(["image/png", "text/plain", "application/x-npy", "x"]), "application/json"),
        lambda: (",".join(["0"] * width).encode(), "text/csv", rng.choice(["application/xml", "image/png", "text/html"])),
        lambda: (b"", "text/csv", "application/json"),
        lambda: (b"\xff\xfe" + ",".join(["0"] * width).encode("utf-16-le"), "text/csv", "text/csv"),
    ]
    return [makers[i % len(makers)]() for i in range(count)]


def test_fuzzed_requests_never_get_a_5xx_and_the_endpoint_keeps_serving(pipeline):
    """Through InvokeEndpoint, as a client would send them: 260 malformed bodies, then a good one."""
    server, _, _, _ = pipeline
    runtime, name = server.session().client("sagemaker-runtime"), endpoint_name(server)
    good = ",".join(["0"] * 25)
    before = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Accept="text/csv", Body=good)["Body"].read()
    statuses: Counter = Counter()
    for body, content_type, accept in malformed_requests(260):
        try:
            runtime.invoke_endpoint(EndpointName=name, ContentType=content_type, Accept=accept, Body=body)
            statuses[200] += 1
        except ClientError as error:
            statuses[error.response.get("OriginalStatusCode", error.response["ResponseMetadata"]["HTTPStatusCode"])] += 1
    assert sum(statuses.values()) == 260 and not any(status >= 500 for status in statuses), statuses
    assert set(statuses) - {200} <= {400, 406, 413, 415}, statuses
    after = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Accept="text/csv", Body=good)["Body"].read()
    assert after == before

AWS_CLI = ROOT / ".tools" / "awscli" / "bin" / "aws"


def aws(env: dict[str, str], *args: str) -> dict:
    """One AWS CLI v1 command against the local AWS, as a learner types it; its JSON answer."""
    completed = subprocess.run([str(AWS_CLI), *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, f"aws {' '.join(args)}: {completed.stderr}"
    return json.loads(completed.stdout or "{}")


def test_the_endpoints_console_pages_through_the_aws_cli(pipeline):
    """What the console shows of the endpoint, asked with the AWS CLI v1 (PyPI). Regression:
    offline nothing published the AWS/SageMaker metrics (the alarms never saw a datapoint),
    there was no /aws/sagemaker/Endpoints/<name> log group, and describe-alarm-history
    answered HTTP 500."""
    server, env, _, _ = pipeline
    env = {**env, "PATH": os.environ["PATH"]}
    name = endpoint_name(server)
    assert aws(env, "sagemaker", "describe-endpoint", "--endpoint-name", name)["EndpointStatus"] == "InService"

    def statistic(metric: str, *statistics: str) -> dict:
        now = datetime.now(timezone.utc)
        points = aws(
            env, "cloudwatch", "get-metric-statistics", "--namespace", "AWS/SageMaker", "--metric-name", metric,
            "--dimensions", f"Name=EndpointName,Value={name}", "Name=VariantName,Value=AllTraffic",
            "--start-time", (now - timedelta(hours=1)).isoformat(), "--end-time", (now + timedelta(minutes=1)).isoformat(),
            "--period", "7200", "--statistics", *statistics,
        )["Datapoints"]
        assert len(points) == 1, (metric, points)
        return points[0]

    # This test's own traffic, counted before and after: 30 good requests and 10 malformed
    # ones. What earlier requests recorded is published first; the endpoint publishes each
    # second and CloudWatch's figures trail, so wait a little for this test's own.
    for variant in server.endpoints.hosted(server.region, name).all_variants():
        variant.telemetry.publish()
    before = {metric: statistic(metric, "Sum")["Sum"] for metric in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")}
    runtime = server.session().client("sagemaker-runtime")
    for _ in range(30):
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=",".join(["0"] * 25))
    for _ in range(10):
        with pytest.raises(ClientError):
            runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="1,2,3")
    deadline = time.monotonic() + 30
    while statistic("Invocations", "Sum")["Sum"] < before["Invocations"] + 40 and time.monotonic() < deadline:
        time.sleep(1)
    assert statistic("Invocations", "Sum")["Sum"] == before["Invocations"] + 40
    assert statistic("Invocation4XXErrors", "Sum")["Sum"] == before["Invocation4XXErrors"] + 10
    assert statistic("Invocation5XXErrors", "Sum")["Sum"] == before["Invocation5XXErrors"] == 0
    for metric in ("ModelLatency", "OverheadLatency"):
        latency = statistic(metric, "Average", "Maximum")
        assert latency["Unit"] == "Microseconds" and 0 < latency["Average"] <= latency["Maximum"] < 60e6, (metric, latency)

    group = f"/aws/sagemaker/Endpoints/{name}"
    # The endpoint stack's own group, made before the endpoint: encrypted, expiring.
    groups = aws(env, "logs", "describe-log-groups", "--log-group-name-prefix", group)["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [(group, 7)] and groups[0]["kmsKeyId"].startswith("arn:aws:kms:")
    streams = aws(env, "logs", "describe-log-streams", "--log-group-name", group)["logStreams"]
    assert [s["logStreamName"].split("/")[0] for s in streams] == ["AllTraffic"] and re.fullmatch(r"AllTraffic/i-[0-9a-f]{17}", streams[0]["logStreamName"])
    events = aws(env, "logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "gunicorn")["events"]
    assert events, "the serving container's start-up is not in its log group"

    alarms = [a for a in aws(env, "cloudwatch", "describe-alarms")["MetricAlarms"] if {"Name": "EndpointName", "Value": name} in a["Dimensions"]]
    errors = next(a for a in alarms if a["MetricName"] == "Invocation5XXErrors")
    # The alarm's own query finds the published datapoints (its state reason names only the
    # last change, which came before any request, as on AWS).
    backend = cloudwatch_backends[ACCOUNT_ID][server.region]
    state, reason = evaluate(backend, backend.alarms[errors["AlarmName"]], datetime.now(timezone.utc))
    assert errors["StateValue"] == state == "OK" and reason.startswith("Threshold not crossed: datapoint(s) [0"), reason
    history = aws(env, "cloudwatch", "describe-alarm-history", "--alarm-name", errors["AlarmName"])["AlarmHistoryItems"]
    assert history[-1]["HistoryItemType"] == "ConfigurationUpdate" and "StateUpdate" in {h["HistoryItemType"] for h in history}


def test_the_jobs_and_the_registry_through_the_aws_cli(pipeline):
    """Regression: describe-training-job showed moto's placeholder metric definition
    ("test:dcg"), one "Starting" transition and no TrainingTime/BillableTime;
    list-training-jobs gave TrainingEndTime = CreationTime; describe-processing-job had no
    ProcessingResources; the model package said it accepts text/csv only."""
    server, env, _, _ = pipeline
    env = {**env, "PATH": os.environ["PATH"]}
    listed = aws(env, "sagemaker", "list-training-jobs", "--status-equals", "Completed", "--max-results", "100")["TrainingJobSummaries"]
    summary = listed[0]
    assert summary["TrainingEndTime"] > summary["CreationTime"]
    job = aws(env, "sagemaker", "describe-training-job", "--training-job-name", summary["TrainingJobName"])
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"] and job["SecondaryStatus"] == "Completed"
    assert all(t["StartTime"] <= t["EndTime"] for t in job["SecondaryStatusTransitions"])
    assert job["TrainingTimeInSeconds"] >= 1 and job["BillableTimeInSeconds"] == job["TrainingTimeInSeconds"]
    definitions = {d["Name"]: d["Regex"] for d in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert "validation:aucpr" in definitions and "test:dcg" not in definitions
    assert re.match(definitions["validation:aucpr"], "[7]#011train-aucpr:0.91#011validation-aucpr:0.875").group(1) == "0.875"
    assert {m["MetricName"] for m in job["FinalMetricDataList"]} <= set(definitions)

    processing = aws(env, "sagemaker", "list-processing-jobs", "--status-equals", "Completed")["ProcessingJobSummaries"][0]
    described = aws(env, "sagemaker", "describe-processing-job", "--processing-job-name", processing["ProcessingJobName"])
    assert described["ProcessingResources"]["ClusterConfig"]["InstanceType"].startswith("ml.")
    assert described["ProcessingStartTime"] <= described["ProcessingEndTime"]

    group = outputs_of(server)["ModelPackageGroupName"]
    package = aws(env, "sagemaker", "list-model-packages", "--model-package-group-name", group)["ModelPackageSummaryList"][0]
    spec = aws(env, "sagemaker", "describe-model-package", "--model-package-name", package["ModelPackageArn"])["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == spec["SupportedResponseMIMETypes"] == ["text/csv", "application/json"]


def test_safe_deployment_challenges_the_champion_with_the_newest_other_version(pipeline):
    """Step 09's choice of challenger where the pipeline registered a version (the whole run
    of step 09 is test_offline_lab's, whose gate refuses its model: the unregistered path):
    the newest version of the group that is not the champion's, served as registered."""
    server, _, _, _ = pipeline
    step = load_step("09_safe_deployment.py")
    sagemaker = server.session().client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint_name(server))["EndpointConfigName"])
    champion = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    container, described_as = step.challenger_container(sagemaker, outputs_of(server), champion, None)
    group = outputs_of(server)["ModelPackageGroupName"]
    packages = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    newest = max(packages, key=lambda p: p["ModelPackageVersion"])
    assert newest["ModelPackageArn"] != champion["PrimaryContainer"]["ModelPackageName"]
    assert described_as == f"{newest['ModelPackageArn'].split('/', 1)[1]} ({newest['ModelApprovalStatus']})"
    assert container == sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])["InferenceSpecification"]["Containers"][0]


def test_deleting_the_endpoint_stack_stops_its_container(pipeline):
    """Regression: the serving container outlived `cdk destroy`: InvokeEndpoint on the deleted
    endpoint answered 200. (Last in this module: it takes the endpoint away.)"""
    server, _, _, _ = pipeline
    name = endpoint_name(server)
    process = server.endpoints.hosted(server.region, name).container.process
    cloudformation = server.session().client("cloudformation")
    for stack in ("FraudLab-Monitoring", "FraudLab-Endpoint"):
        cloudformation.delete_stack(StackName=stack)
    process.wait(timeout=30)  # stopped by the local AWS, without any call naming the endpoint
    with pytest.raises(ClientError) as gone:
        server.session().client("sagemaker-runtime").invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="1")
    assert gone.value.response["Error"]["Code"] == "ValidationError" and "not found" in str(gone.value)
    # The endpoint's log group went with its stack (SageMaker's own would have stayed).
    groups = server.session().client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/sagemaker/Endpoints/{name}")["logGroups"]
    assert groups == []


def test_the_pipeline_retrains_through_the_gate_then_reruns_from_its_cache(pipeline):
    """Step 07 both ways on the lab's data: the gate passes and the model is registered for
    review; rerun with a margin no model meets, the three jobs come from the cache and the
    Fail step says why, and nothing more is registered."""
    server, env, cwd, runs = pipeline
    sagemaker = server.session().client("sagemaker")
    group = outputs_of(server)["ModelPackageGroupName"]
    figures = runs["recorded"]["07_run_pipeline.py"]
    assert figures["execution_status"] == "Succeeded" and figures["cached_steps"] == []
    assert [(s["step"], s["status"]) for s in figures["steps"]] == [
        ("Features", "Succeeded"), ("Train", "Succeeded"), ("Evaluate", "Succeeded"), ("Gate", "Succeeded"), ("Register", "Succeeded")]
    # The evaluation step runs step 04's evaluation code on the same data: the same figure.
    assert abs(figures["gate"]["pr_auc"] - runs["recorded"]["04_evaluate_and_register.py"]["test_pr_auc"]) < 1e-6
    package = sagemaker.describe_model_package(ModelPackageName=figures["model_package_arn"])
    assert package["ModelApprovalStatus"] == figures["approval"] == "PendingManualApproval"
    assert "/models/pipeline-" in package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert "/evaluation/pipeline-" in package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    out = runs["07_run_pipeline.py"].stdout
    assert "ran / decided" in out and "outcome True" in out and "update-model-package" in out
    registered = len(sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"])

    refused = run_step("07_run_pipeline.py", env, "--margin", "0.9", cwd=cwd)
    assert refused.returncode == 0, refused.stdout + refused.stderr
    figures = results_of(cwd, "07_run_pipeline")
    assert figures["execution_status"] == "Failed" and figures["cached_steps"] == ["Features", "Train", "Evaluate"]
    gate_failed = next(s for s in figures["steps"] if s["step"] == "GateFailed")
    assert gate_failed["status"] == "Failed" and "below the margin 0.9" in gate_failed["detail"]
    assert figures["model_package_arn"] == "" and "the gate refused the model" in refused.stdout
    assert len(sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]) == registered


def test_the_drift_alarm_starts_the_retraining_pipeline(pipeline):
    """Drift -> retrain -> gate -> register: the alarm's state change reached the EventBridge
    rule, which started the pipeline with its own DataVersion (no cache from step 07)."""
    server, _, _, runs = pipeline
    figures = runs["recorded"]["08_monitor_drift.py"]
    assert figures["alarm_state"] == "ALARM"
    retrained = figures["retraining"]
    assert retrained["execution_status"] == "Succeeded" and retrained["cached_steps"] == []
    assert [s["step"] for s in retrained["steps"]] == ["Features", "Train", "Evaluate", "Gate", "Register"]
    assert retrained["approval"] == "PendingManualApproval"  # a person approves what retraining produced
    sagemaker = server.session().client("sagemaker")
    parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=retrained["execution_arn"])["PipelineParameters"]
    assert {"Name": "DataVersion", "Value": "drift-alarm"} in parameters
    out = runs["08_monitor_drift.py"].stdout
    assert "Drift -> retrain: EventBridge rule" in out and "registered" in out


def test_the_pipeline_starts_by_hand_with_the_documented_aws_cli_command(pipeline):
    """README / EXAM_MAP: the manual start without step 07, as a scheduler or CI job would."""
    server, env, _, _ = pipeline
    env = {**env, "PATH": os.environ["PATH"]}
    arn = aws(env, "sagemaker", "start-pipeline-execution", "--pipeline-name", "FraudLab-MLPlatform-training",
              "--pipeline-parameters", "Name=DataVersion,Value=manual-1")["PipelineExecutionArn"]
    execution = server.pipelines.wait(arn, timeout=300)
    assert execution.status in ("Succeeded", "Failed") and execution.parameters["DataVersion"] == "manual-1"
    steps = aws(env, "sagemaker", "list-pipeline-execution-steps", "--pipeline-execution-arn", arn)["PipelineExecutionSteps"]
    assert {s["StepName"] for s in steps} >= {"Features", "Train", "Evaluate", "Gate"}
    assert all(s["StepStatus"] == "Succeeded" for s in steps if s["StepName"] in ("Features", "Train", "Evaluate", "Gate"))
