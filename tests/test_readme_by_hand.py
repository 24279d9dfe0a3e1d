"""The README's "Offline, by hand" commands, run verbatim from the README's own text: the
suite's one whole lab (steps 00-10, destroy, audit, report). The run pauses twice, as a
learner may between commands: after step 08, for the checks that need the lab live (the
endpoint, the jobs, the registry, the pipeline, drift; reruns of steps 03, 04, 07 and 08 in a
scratch directory of their own), and after destroy. The tests that read a whole run's results
(the report, step 09's figures, the results files) read the same run."""
from __future__ import annotations

import html
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from labkit import drift
from localaws.runtime import image_env
from localaws.server import session_of
from processing import evaluation
from tests.helpers import ROOT, isolated_env, load_step, outputs_of, run_step

PLACEHOLDER = "<arn printed by step 04>"
# What a learner's checkout has; build/ and .localaws/ are this run's own.
SHARED = ("Makefile", "app.py", "cdk.json", "package.json", "package-lock.json", "lab_scripts", "localaws", "stacks",
          "processing", "inference", "requirements.txt", "requirements-dev.txt", "requirements-checkov.txt",
          "requirements-awscli.txt", ".venv", ".image-env", ".tools", "node_modules")
STEPS = [path.stem for path in sorted((ROOT / "lab_scripts").glob("[0-9][0-9]_*.py"))]


def by_hand_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Offline, by hand"):]
    block = section[section.index("```bash\n") + len("```bash\n"):]
    return [line for line in block[:block.index("```")].splitlines() if line.strip()]


def option(step: str, name: str, default: str) -> str:
    """The value the README passes to a step's option (the step's default if it passes none)."""
    command = next(c for c in by_hand_commands() if f"lab_scripts/{step}.py" in c)
    words = shlex.split(command.split("#")[0])
    return words[words.index(name) + 1] if name in words else default


def script(commands: list[str]) -> str:
    """The commands as one shell session (`source` must last), each echoed with its output
    into the transcript; the ARN step 04 prints is copied into the deploy, as a learner does."""
    lines = ["set -eo pipefail"]
    for command in commands:
        if PLACEHOLDER in command:
            lines.append("ARN=$(grep -o 'arn:aws:sagemaker:[a-z0-9-]*:[0-9]*:model-package/[A-Za-z0-9-]*/[0-9]*' step04.out | tail -1)")
            command = command.replace(PLACEHOLDER, "$ARN")
        lines.append(f"echo {shlex.quote('$ ' + command)}")
        output = " | tee step04.out" if "04_evaluate_and_register" in command else ""
        lines.append(f"{command.split(' #')[0].rstrip()} 2>&1{output}")  # a trailing comment would swallow the redirection
    return "\n".join(lines)


class Replay:
    """The README's commands run in a directory of their own (the checkout's files linked in,
    so the developer's own local AWS, .localaws/, is never touched), in phases: each phase a
    shell session of its own that sources .localaws/env again, as a learner's new terminal
    would. A phase after a failed one runs nothing: the learner would stop there."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.transcript, self.code = workdir, "", 0
        for name in SHARED:
            (workdir / name).symlink_to(ROOT / name)
        # A learner's shell: no AWS settings, and not inside `make test` (nested make says
        # "Entering/Leaving directory" around everything).
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}

    def run(self, commands: list[str]) -> None:
        if self.code == 0:
            source = [c for c in by_hand_commands() if c.startswith("source ")] if self.transcript else []
            completed = subprocess.run(["bash", "-c", script(source + commands)], cwd=self.workdir, env=self.env,
                                       capture_output=True, text=True, timeout=900)
            self.transcript += completed.stdout + completed.stderr
            self.code = completed.returncode

    def output_of(self, step: str) -> str:
        """What the first run of `lab_scripts/<step>.py` printed."""
        start = self.transcript.index(f"$ .venv/bin/python lab_scripts/{step}.py")
        following = self.transcript.find("\n$ ", start + 1)
        return self.transcript[start:following if following > 0 else None]

    def stop(self) -> None:  # a failed run must not leave its local AWS behind
        subprocess.run(["make", "local-down"], cwd=self.workdir, env=self.env, capture_output=True, timeout=60)


def phase(name: str) -> list[str]:
    """The README's commands of a phase: "live" up to step 09, "destroy" steps 09 and 10 and
    the destroy, "end" the audit after it, the report and local-down."""
    commands = by_hand_commands()
    at_09 = next(i for i, c in enumerate(commands) if "lab_scripts/09_" in c)
    at_audit = next(i for i, c in enumerate(commands) if "--audit-only" in c)
    return {"live": commands[:at_09], "destroy": commands[at_09:at_audit], "end": commands[at_audit:]}[name]


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    run = Replay(tmp_path_factory.mktemp("by-hand"))
    # `make local-up` runs `make setup` first: through the links, a stale set-up would be
    # reinstalled under the other tests' feet (`make test` brings it up to date before).
    stale = subprocess.run(["make", "-q", "setup"], cwd=run.workdir, env=run.env, capture_output=True, timeout=60)
    assert stale.returncode == 0, "the checkout's set-up is out of date: run `make setup` (make test does) first"
    yield run
    run.stop()


class LiveLab:
    """The by-hand run's local AWS (make local-up's server), reached through .localaws/env as
    the steps reach it; `scratch` is a directory of its own for the steps these tests rerun, so
    their results files never reach the run's report."""

    def __init__(self, run: Replay, scratch: Path) -> None:
        self.run, self.scratch = run, scratch
        self.aws = dict(re.findall(r"^export (\w+)=(.*)$", (run.workdir / ".localaws/env").read_text(), re.M))
        self.endpoint_url, self.runtime_url = self.aws["AWS_ENDPOINT_URL"], self.aws["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
        self.server_pid = int((run.workdir / ".localaws/pid").read_text())
        self.env = isolated_env(**self.aws)
        self.recorded = {step: results_of(run.workdir, step) for step in STEPS if (run.workdir / "build/lab-results" / f"{step}.json").exists()}

    def session(self):
        return session_of(self.aws)

    def step(self, script: str, *args: str) -> subprocess.CompletedProcess:
        return run_step(script, self.env, *args, cwd=self.scratch)

    def container_processes(self) -> list[int]:
        """The serving containers' processes the local AWS started (their environment names the
        serving program)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and b"SAGEMAKER_PROGRAM=" in (entry / "environ").read_bytes() and self._started_by_server(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return found

    def _started_by_server(self, pid: int) -> bool:
        while pid > 1:
            if pid == self.server_pid:
                return True
            pid = int(process_status(pid)[1])  # the parent's
        return False


def process_status(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state first, then the parent's pid)."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


@pytest.fixture(scope="module")
def live(replay, tmp_path_factory) -> LiveLab:
    """The lab after step 08, its local AWS up: steps 01-04, `localaws deploy` (endpoint,
    monitoring), 05-08 as the README runs them."""
    replay.run(phase("live"))
    assert replay.code == 0, replay.transcript[-4000:]
    return LiveLab(replay, tmp_path_factory.mktemp("reruns"))


@pytest.fixture(scope="module")
def destroyed(live) -> dict:
    """Steps 09 and 10, then `localaws destroy`: what was serving just before the destroy."""
    live.run.run(phase("destroy")[:-1])
    assert live.run.code == 0, live.run.transcript[-4000:]
    before = {"endpoint": endpoint_name(live), "processes": live.container_processes()}
    live.run.run(phase("destroy")[-1:])
    assert live.run.code == 0, live.run.transcript[-4000:]
    return before


@pytest.fixture(scope="module")
def by_hand(replay, live, destroyed):
    """(transcript, exit code, the directory it ran in) of the whole section."""
    replay.run(phase("end"))
    return replay.transcript, replay.code, replay.workdir


def results_of(workdir, step: str) -> dict:
    return json.loads((workdir / "build/lab-results" / f"{step}.json").read_text())


def endpoint_name(lab) -> str:
    stack = lab.session().client("cloudformation").describe_stacks(StackName="FraudLab-Endpoint")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["EndpointName"]


def test_the_section_is_the_whole_lab_in_order():
    commands = by_hand_commands()
    assert commands[0].split("#")[0].strip() == "make local-up" and commands[-1] == "make local-down"
    assert any(PLACEHOLDER in c for c in commands) and any("10_teardown.py --audit-only" in c for c in commands)
    run = [re.search(r"lab_scripts/(\d\d_\w+)\.py", c).group(1) for c in commands if re.search(r"lab_scripts/\d\d_", c)]
    assert run[:len(STEPS)] == STEPS and run[len(STEPS):] == ["10_teardown"]  # then the audit after destroy


# --- The lab live, after step 08 ------------------------------------------------------------

CORRUPT = 20  # step 01's --corrupt default: malformed records sent along on purpose


def test_feature_step_quarantines_every_malformed_record_step_01_sent(live):
    """Each of step 01's malformed records is quarantined under its reason or kept once as an
    identical copy."""
    out = live.run.output_of("02_feature_engineering")
    assert "Completed" in out
    counted = {m.group(1): int(m.group(2)) for m in re.finditer(r"^  (\w+) +(\d+) +records ", out, re.M)}
    record_reasons = ("bad_json", "missing_field", "wrong_type", "negative_amount", "future_timestamp", "conflicting_duplicate", "duplicate")
    assert set(record_reasons) <= set(counted), counted
    assert sum(counted[r] for r in record_reasons) >= CORRUPT, counted
    assert live.recorded["02_feature_engineering"]["quarantined_records"] >= sum(counted[r] for r in record_reasons if r != "duplicate")


def test_the_feature_job_without_the_key_permission_is_refused_in_aws_words(live):
    """Step 02 --without kms: the job runs as a copy of the Processing role minus UseLabKey and
    fails on its first encrypted read, with the role's session, the action and the key named;
    the copy is deleted, the lab's role untouched. It fails on code that evaluates no IAM."""
    done = live.step("02_feature_engineering.py", "--without", "kms")
    assert done.returncode == 0, done.stdout[-2000:]
    key = live.session().client("cloudformation").describe_stacks(StackName="FraudLab-Data")["Stacks"][0]["Outputs"]
    key_arn = next(o["OutputValue"] for o in key if o["OutputKey"] == "KeyArn")
    refused = re.search(r"assumed-role/(FraudLab-without-kms-\w+)/SageMaker is not authorized to perform: kms:Decrypt on resource: (\S+)", done.stdout)
    assert refused and refused.group(2) == key_arn, done.stdout[-2000:]
    assert "left out: UseLabKey" in done.stdout and "stacks/ml_platform_stack.py" in done.stdout
    roles = [r["RoleName"] for r in live.session().client("iam").list_roles()["Roles"]]
    assert refused.group(1) not in roles and any("ProcessingRole" in r for r in roles)


def test_model_beats_the_rule_and_is_approved(live):
    figures = live.recorded["04_evaluate_and_register"]
    assert figures["test_pr_auc"] >= figures["rule_pr_auc"] + 0.1  # the approval margin
    low, high = figures["test_pr_auc_interval"]
    assert low <= figures["test_pr_auc"] <= high
    assert figures["approval"] == "Approved"
    package = live.session().client("sagemaker").describe_model_package(ModelPackageName=figures["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["InferenceSpecification"]["Containers"][0]["Image"].endswith("sagemaker-xgboost:3.2-0")
    out = live.run.output_of("04_evaluate_and_register")
    assert "accuracy rewards doing nothing" in out and "card precision@100" in out and "Hardest scenarios" in out


def test_evaluation_files_are_written(live):
    quality = json.loads((live.run.workdir / "build/evaluation/evaluation.json").read_text())
    metrics = quality["binary_classification_metrics"]
    assert {"pr_auc", "auc", "recall", "precision", "f1", "confusion_matrix"} <= set(metrics)
    for plot in ("pr_curve", "roc_curve", "confusion_matrix", "feature_importance"):
        assert (live.run.workdir / f"build/evaluation/{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_are_idempotent(live):
    again = live.step("03_train_model.py")
    assert again.returncode == 0 and "reusing" in again.stdout
    register = live.step("04_evaluate_and_register.py")
    assert register.returncode == 0 and register.stdout.count("model-package/fraudlab-fraud-detector/1: Approved") == 1


def test_tuning_trains_children_and_keeps_the_best(live):
    tuned = live.step("03_train_model.py", "--tune", "--rerun")
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "best of 6 trainings" in tuned.stdout
    sagemaker = live.session().client("sagemaker")
    names = [j["TrainingJobName"] for j in sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]]
    assert sum("-00" in n for n in names) >= 6


def test_endpoint_scores_held_out_payments(live):
    figures = live.recorded["06_score_transactions"]
    assert figures["scored"] == int(option("06_score_transactions", "--count", "1000"))
    assert figures["recall"] >= 0.5 and figures["precision"] > 0 and figures["latency_p50_ms"] > 0
    out = live.run.output_of("06_score_transactions")
    assert "ModelError (400)" in out and "the next request is answered normally" in out
    deployed = live.run.output_of("05_deploy_endpoint")
    assert "InService" in deployed and "autoscaling: 1-2 instances" in deployed


def test_a_day_in_batch_scores_exactly_as_the_endpoint(live):
    """Issue 14 (batch transform): the transform job runs the endpoint's model through the
    real serving container with SageMaker's batching; its scores equal the endpoint's."""
    figures = live.recorded["06_score_transactions"]
    assert figures["batch_rows"] > 100 and figures["batch_identical"] == figures["batch_rows"]
    out = live.run.output_of("06_score_transactions")
    assert "probabilities identical to the endpoint's" in out and "real-time endpoint, 1 x ml.m5.large, up all day" in out
    sagemaker, s3 = live.session().client("sagemaker"), live.session().client("s3")
    job = sagemaker.describe_transform_job(TransformJobName=figures["batch_job"])
    assert job["TransformJobStatus"] == "Completed" and job["TransformEndTime"] >= job["TransformStartTime"]
    assert job["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-2]"}
    bucket, key = job["TransformOutput"]["S3OutputPath"].removeprefix("s3://").rstrip("/").split("/", 1)
    written = s3.get_object(Bucket=bucket, Key=f"{key}/payments.csv.out")
    assert written["ServerSideEncryption"] == "aws:kms" and written["SSEKMSKeyId"] == job["TransformOutput"]["KmsKeyId"]
    first = written["Body"].read().decode().splitlines()[0].split(",")
    assert first[0].startswith("TXN-") and len(first) == 2 and 0 <= float(first[1]) <= 1  # id and probability only


def test_invoke_endpoint_through_boto3_returns_real_predictions(live):
    runtime = live.session().client("sagemaker-runtime")
    row = ",".join(["0"] * 25)
    response = runtime.invoke_endpoint(EndpointName=endpoint_name(live), ContentType="text/csv", Accept="text/csv", Body=f"{row}\n{row}")
    lines = response["Body"].read().decode().split()
    assert len(lines) == 2 and all(0 <= float(line.split(",")[0]) <= 1 for line in lines)
    # Flask in the real container adds the charset: "text/csv; charset=utf-8".
    assert response["ContentType"].split(";")[0] == "text/csv" and response["InvokedProductionVariant"] == "AllTraffic"


def test_invoke_endpoint_answers_the_same_on_the_runtime_host_and_the_shared_url(live):
    """.localaws/env names InvokeEndpoint's own host (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, as
    boto3 and the AWS CLI read it) beside the shared URL; both answer alike."""
    assert live.runtime_url != live.endpoint_url
    row = ",".join(["0"] * 25)
    replies = []
    for url in (live.runtime_url, live.endpoint_url):
        runtime = live.session().client("sagemaker-runtime", endpoint_url=url)
        replies.append(runtime.invoke_endpoint(EndpointName=endpoint_name(live), ContentType="text/csv", Accept="application/json", Body=row)["Body"].read())
    assert replies[0] == replies[1] and json.loads(replies[0])["predictions"]


def test_the_endpoint_container_runs_as_the_model_asks(live):
    """describe_model reports what the template set, and the container gets exactly that:
    the Model's Environment, and no network (a namespace of its own) under network isolation."""
    sagemaker, name = live.session().client("sagemaker"), endpoint_name(live)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["EnableNetworkIsolation"] is True and model["VpcConfig"]["Subnets"]
    processes = live.container_processes()
    assert processes, "no serving container under the local AWS"
    for pid in processes:
        environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
        assert environ["SAGEMAKER_PROGRAM"] == "inference.py" and environ["PIP_NO_INDEX"] == "true"
        assert not any(key.startswith("AWS_") for key in environ)  # isolated: no way to AWS, no credentials
        if image_env.network_sandbox()[1] is None:  # where unshare is not permitted, the container says so (test_container_conformance)
            assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_malformed_and_unknown_requests_get_aws_shaped_errors(live):
    runtime = live.session().client("sagemaker-runtime")
    with pytest.raises(ClientError) as bad:
        runtime.invoke_endpoint(EndpointName=endpoint_name(live), ContentType="text/csv", Body="1,2,3")
    assert bad.value.response["Error"]["Code"] == "ModelError"
    assert bad.value.response["OriginalStatusCode"] == 400
    assert "expected 25" in bad.value.response["OriginalMessage"]
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="text/csv", Body="1")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"


def test_data_capture_lands_in_sagemaker_format_and_layout(live):
    s3, name, bucket = live.session().client("s3"), endpoint_name(live), outputs_of(live)["LabBucketName"]
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"capture/{name}/") for o in page.get("Contents", [])]
    pattern = re.compile(rf"^capture/{name}/AllTraffic/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/\d{{2}}-\d{{2}}-\d{{3}}-[0-9a-f-]{{36}}\.jsonl$")
    assert keys and all(pattern.match(k) for k in keys), keys[:3]
    lines = [json.loads(line) for k in keys for line in s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode().splitlines()]
    assert len(lines) > int(option("06_score_transactions", "--single", "200"))  # step 06's single requests and its batches
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


def drift_alarm_name(lab) -> str:
    monitoring = lab.session().client("cloudformation").describe_stacks(StackName="FraudLab-Monitoring")["Stacks"][0]["Outputs"]
    return next(o["OutputValue"] for o in monitoring if o["OutputKey"] == "DriftAlarmName")


def test_drift_step_detects_each_injected_kind_and_the_alarm_notifies(live):
    figures = live.recorded["08_monitor_drift"]
    assert figures["clean_violations"] == 0 and figures["alarm_state"] == "ALARM"
    for feature, check in drift.EXPECTED.values():
        assert f"{feature}:{check}" in figures["detected"]
    # The alarm went OK with the clean window, then ALARM, and notified the (KMS-encrypted) alerts topic.
    cloudwatch, outputs, alarm_name = live.session().client("cloudwatch"), outputs_of(live), drift_alarm_name(live)
    changes = cloudwatch.describe_alarm_history(AlarmName=alarm_name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending")["AlarmHistoryItems"]
    states = [json.loads(change["HistoryData"])["newState"]["stateValue"] for change in changes]
    assert states[-1] == "ALARM" and "OK" in states, states
    actions = cloudwatch.describe_alarm_history(AlarmName=alarm_name, HistoryItemType="Action")["AlarmHistoryItems"]
    notified = [action for action in actions if outputs["AlertsTopicArn"] in action["HistorySummary"]]
    assert len(notified) >= states.count("OK") + states.count("ALARM"), actions  # both states notify the topic
    # The report files are where the step said.
    s3 = live.session().client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=outputs["LabBucketName"], Prefix="monitoring/reports/")["Contents"]]
    assert sum(k.endswith("constraint_violations.json") for k in keys) >= 2
    out = live.run.output_of("08_monitor_drift")
    assert "No data" not in out
    # The notification as the learner sees it (regression: never shown), and the feature
    # count explained (regression: 25 in step 02, "26 features (23 compared)" here, no word why).
    assert f'SNS notification read from the alerts inbox: ALARM: "{alarm_name}"' in out and "OK -> ALARM at" in out, out
    assert "the model's 25 columns, plus `category`: its" in out and "23 compared for drift; hour_of_day, is_weekend, is_night only" in out, out


def test_the_drift_step_rerun_does_not_wait_for_the_alarm_and_says_it_is_an_earlier_runs(live):
    """Regression: a rerun waited silently (283 s, then 46 s) for the previous run's ALARM to
    clear, and showed that stale ALARM as if the new clean traffic had raised it."""
    # The earlier run's drift verdict, fresh whatever ran since (its datapoint decides the
    # alarm's one-minute window, as the step's own run did when the rerun came at once).
    cloudwatch = live.session().client("cloudwatch")
    alarm = cloudwatch.describe_alarms(AlarmNames=[drift_alarm_name(live)])["MetricAlarms"][0]
    cloudwatch.put_metric_data(Namespace=alarm["Namespace"], MetricData=[
        {"MetricName": alarm["MetricName"], "Dimensions": alarm["Dimensions"], "Value": alarm["Threshold"] + 7},
    ])
    deadline = time.monotonic() + 10  # the local AWS evaluates every alarm twice a second
    while cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["StateValue"] != "ALARM":
        assert time.monotonic() < deadline, "the drift alarm did not go to ALARM"
        time.sleep(0.2)
    rerun = live.step("08_monitor_drift.py")  # the first run's size (the README passes none)
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


def test_fuzzed_requests_never_get_a_5xx_and_the_endpoint_keeps_serving(live):
    """Through InvokeEndpoint, as a client would send them: 260 malformed bodies, then a good one."""
    runtime, name = live.session().client("sagemaker-runtime"), endpoint_name(live)
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


def test_the_endpoints_console_pages_through_the_aws_cli(live):
    """What the console shows of the endpoint, asked with the AWS CLI v1 (PyPI). Regression:
    offline nothing published the AWS/SageMaker metrics (the alarms never saw a datapoint),
    there was no /aws/sagemaker/Endpoints/<name> log group, and describe-alarm-history
    answered HTTP 500."""
    env = {**live.env, "PATH": os.environ["PATH"]}
    name = endpoint_name(live)
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
    # ones. The endpoint publishes each second and CloudWatch's figures trail: what earlier
    # requests recorded has landed once the count holds still, and this test's own later.
    cloudwatch, counted, deadline = live.session().client("cloudwatch"), None, time.monotonic() + 60
    while counted != (counted := invocations(cloudwatch, name)):
        assert time.monotonic() < deadline, f"the endpoint's Invocations never held still ({counted})"
        time.sleep(2.5)
    before = {metric: statistic(metric, "Sum")["Sum"] for metric in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")}
    runtime = live.session().client("sagemaker-runtime")
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
    # No 5xx: the alarm is OK (that it sees the endpoint's datapoints, step 09's canary
    # rollback shows: it goes to ALARM on the canary's errors).
    assert errors["StateValue"] == "OK", errors["StateReason"]
    history = aws(env, "cloudwatch", "describe-alarm-history", "--alarm-name", errors["AlarmName"])["AlarmHistoryItems"]
    assert history[-1]["HistoryItemType"] == "ConfigurationUpdate" and "StateUpdate" in {h["HistoryItemType"] for h in history}


def test_the_jobs_and_the_registry_through_the_aws_cli(live):
    """Regression: describe-training-job showed moto's placeholder metric definition
    ("test:dcg"), one "Starting" transition and no TrainingTime/BillableTime;
    list-training-jobs gave TrainingEndTime = CreationTime; describe-processing-job had no
    ProcessingResources; the model package said it accepts text/csv only."""
    env = {**live.env, "PATH": os.environ["PATH"]}
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

    group = outputs_of(live)["ModelPackageGroupName"]
    package = aws(env, "sagemaker", "list-model-packages", "--model-package-group-name", group)["ModelPackageSummaryList"][0]
    spec = aws(env, "sagemaker", "describe-model-package", "--model-package-name", package["ModelPackageArn"])["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == spec["SupportedResponseMIMETypes"] == ["text/csv", "application/json"]


def test_safe_deployment_challenges_the_champion_with_the_newest_other_version(live):
    """Step 09's choice of challenger, before step 09 runs (its whole run is below): the
    newest version of the group that is not the champion's, served as registered."""
    step = load_step("09_safe_deployment.py")
    sagemaker = live.session().client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint_name(live))["EndpointConfigName"])
    champion = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    container, described_as = step.challenger_container(sagemaker, outputs_of(live), champion, None)
    group = outputs_of(live)["ModelPackageGroupName"]
    packages = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    newest = max(packages, key=lambda p: p["ModelPackageVersion"])
    assert newest["ModelPackageArn"] != champion["PrimaryContainer"]["ModelPackageName"]
    assert described_as == f"{newest['ModelPackageArn'].split('/', 1)[1]} ({newest['ModelApprovalStatus']})"
    assert container == sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])["InferenceSpecification"]["Containers"][0]


def test_the_pipeline_retrains_through_the_gate_then_reruns_from_its_cache(live):
    """Step 07 both ways on the lab's data: the gate passes and the model is registered for
    review; rerun with a margin no model meets, the three jobs come from the cache and the
    Fail step says why, and nothing more is registered."""
    sagemaker = live.session().client("sagemaker")
    group = outputs_of(live)["ModelPackageGroupName"]
    figures = live.recorded["07_run_pipeline"]
    assert figures["execution_status"] == "Succeeded" and figures["cached_steps"] == []
    assert [(s["step"], s["status"]) for s in figures["steps"]] == [
        ("Features", "Succeeded"), ("Train", "Succeeded"), ("Evaluate", "Succeeded"), ("Gate", "Succeeded"), ("Register", "Succeeded")]
    # The evaluation step runs step 04's evaluation code on the same data: the same figure.
    assert abs(figures["gate"]["pr_auc"] - live.recorded["04_evaluate_and_register"]["test_pr_auc"]) < 1e-6
    package = sagemaker.describe_model_package(ModelPackageName=figures["model_package_arn"])
    assert package["ModelApprovalStatus"] == figures["approval"] == "PendingManualApproval"
    assert "/models/pipeline-" in package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert "/evaluation/pipeline-" in package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    out = live.run.output_of("07_run_pipeline")
    assert "ran / decided" in out and "outcome True" in out and "update-model-package" in out
    registered = len(sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"])

    refused = live.step("07_run_pipeline.py", "--margin", "0.9")
    assert refused.returncode == 0, refused.stdout + refused.stderr
    figures = results_of(live.scratch, "07_run_pipeline")
    assert figures["execution_status"] == "Failed" and figures["cached_steps"] == ["Features", "Train", "Evaluate"]
    gate_failed = next(s for s in figures["steps"] if s["step"] == "GateFailed")
    assert gate_failed["status"] == "Failed" and "below the margin 0.9" in gate_failed["detail"]
    assert figures["model_package_arn"] == "" and "the gate refused the model" in refused.stdout
    assert len(sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]) == registered


def test_the_drift_alarm_starts_the_retraining_pipeline(live):
    """Drift -> retrain -> gate -> register: the alarm's state change reached the EventBridge
    rule, which started the pipeline with its own DataVersion (no cache from step 07)."""
    figures = live.recorded["08_monitor_drift"]
    assert figures["alarm_state"] == "ALARM"
    retrained = figures["retraining"]
    assert retrained["execution_status"] == "Succeeded" and retrained["cached_steps"] == []
    assert [s["step"] for s in retrained["steps"]] == ["Features", "Train", "Evaluate", "Gate", "Register"]
    assert retrained["approval"] == "PendingManualApproval"  # a person approves what retraining produced
    sagemaker = live.session().client("sagemaker")
    parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=retrained["execution_arn"])["PipelineParameters"]
    assert {"Name": "DataVersion", "Value": "drift-alarm"} in parameters
    out = live.run.output_of("08_monitor_drift")
    assert "Drift -> retrain: EventBridge rule" in out and "registered" in out


def test_the_pipeline_starts_by_hand_with_the_documented_aws_cli_command(live):
    """README / EXAM_MAP: the manual start without step 07, as a scheduler or CI job would."""
    env = {**live.env, "PATH": os.environ["PATH"]}
    arn = aws(env, "sagemaker", "start-pipeline-execution", "--pipeline-name", "FraudLab-MLPlatform-training",
              "--pipeline-parameters", "Name=DataVersion,Value=manual-1")["PipelineExecutionArn"]
    sagemaker, deadline = live.session().client("sagemaker"), time.monotonic() + 300
    while (execution := sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn))["PipelineExecutionStatus"] == "Executing":
        assert time.monotonic() < deadline, execution
        time.sleep(1)
    assert execution["PipelineExecutionStatus"] in ("Succeeded", "Failed")
    parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {"Name": "DataVersion", "Value": "manual-1"} in parameters
    steps = aws(env, "sagemaker", "list-pipeline-execution-steps", "--pipeline-execution-arn", arn)["PipelineExecutionSteps"]
    assert {s["StepName"] for s in steps} >= {"Features", "Train", "Evaluate", "Gate"}
    assert all(s["StepStatus"] == "Succeeded" for s in steps if s["StepName"] in ("Features", "Train", "Evaluate", "Gate"))


def invocations(cloudwatch, endpoint: str) -> float:
    """The endpoint's AllTraffic Invocations over the last hour, as CloudWatch has them now."""
    now = datetime.now(timezone.utc)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="Invocations", Period=7200, Statistics=["Sum"],
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=1))["Datapoints"]
    return sum(p["Sum"] for p in points)


# --- After `localaws destroy` ---------------------------------------------------------------

def test_the_destroy_stops_the_endpoints_container_and_takes_its_log_group(live, destroyed):
    """Regression: the serving container outlived `cdk destroy`: InvokeEndpoint on the deleted
    endpoint answered 200. The container stops without any call naming the endpoint."""
    assert destroyed["processes"], "no serving container was running before the destroy"

    def running(pid: int) -> bool:
        try:
            return process_status(pid)[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 30
    while any(map(running, destroyed["processes"])):
        assert time.monotonic() < deadline, [pid for pid in destroyed["processes"] if running(pid)]
        time.sleep(0.2)
    with pytest.raises(ClientError) as gone:
        live.session().client("sagemaker-runtime").invoke_endpoint(EndpointName=destroyed["endpoint"], ContentType="text/csv", Body="1")
    assert gone.value.response["Error"]["Code"] == "ValidationError" and "not found" in str(gone.value)
    # The endpoint's log group went with its stack (SageMaker's own would have stayed).
    groups = live.session().client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/sagemaker/Endpoints/{destroyed['endpoint']}")["logGroups"]
    assert groups == []


# --- The whole section ------------------------------------------------------------------------

def test_the_readme_by_hand_section_runs_verbatim_and_leaves_nothing(by_hand):
    """Regression: there was no offline destroy, and steps printed `npx cdk deploy|destroy`
    offline, which fails there; the section must run top to bottom and its last audit find
    nothing."""
    transcript, code, workdir = by_hand
    assert code == 0, transcript[-4000:]
    assert "Traceback" not in transcript, transcript[-4000:]
    assert "Warning" not in transcript  # regression: moto's UserWarning in every run
    audit = transcript[transcript.rindex("$ .venv/bin/python lab_scripts/10_teardown.py --audit-only"):]
    assert "no leftovers outside the stacks: the lab is gone" in audit, audit
    assert re.search(r"✓ destroyed .*-Endpoint", transcript), transcript[-4000:]
    assert "local AWS stopped" in transcript.splitlines()[-1]
    page = (workdir / "build/lab-report/index.html").read_text()
    assert "by hand" in page and "<h2>Where to look</h2>" in page and "not run" not in page


def test_teardown_shows_what_each_role_was_granted_and_used(by_hand, replay):
    """Step 10, before destroy, reads IAM's last accessed information for each lab role: every
    execution role used some of what it was granted, and the actions no step used are shown."""
    out = replay.output_of("10_teardown")
    rows = dict(re.findall(r"^  FraudLab-MLPlatform-(\w+?)Role[\w-]*\s+(granted \d+ actions?, used \d+)", out, re.M))
    assert set(rows) >= {"Processing", "Training", "Evaluation", "Serving", "Monitoring", "Pipeline"}, out
    for role, figure in rows.items():
        granted, used = map(int, re.findall(r"\d+", figure))
        assert 0 < used < granted, (role, figure)


def test_every_step_recorded_its_key_figure(by_hand):
    _, _, workdir = by_hand
    figures = {step: results_of(workdir, step)["key_figure"] for step in STEPS}
    count = int(option("01_stream_transactions", "--count", "100000"))
    assert figures["01_stream_transactions"].startswith(f"{count:,} records landed, 0 unexpected duplicates")
    assert "alarm ALARM" in figures["08_monitor_drift"]
    assert figures["10_teardown"] == "0 leftovers, 0 resources in 0 stacks"  # the audit after destroy wrote last


def test_the_report_shows_every_part_of_the_lab(by_hand):
    _, _, workdir = by_hand
    page = (workdir / "build/lab-report/index.html").read_text()
    for section in ("Architecture", "Data landed and features", "Model", "Endpoint", "Drift monitoring", "Teardown"):
        assert f"<h2>{section}</h2>" in page
    for plot in ("pr_curve.png", "roc_curve.png", "confusion_matrix.png", "feature_importance.png"):
        assert f'src="{plot}"' in page and (workdir / "build/lab-report" / plot).stat().st_size > 1000
    assert "completeness_check" in page and "categorical_values_check" in page
    # Issue 12: the model section gives intervals, card precision at the budget, per-scenario recall and why.
    assert re.search(r"<td>\d\.\d{3} \[\d\.\d{2}, \d\.\d{2}\]</td>", page) and "card precision at" in page
    assert "fraud scenario" in page and "accuracy rewards doing nothing" in page and "Hardest scenarios" in page
    # Regression: the page explained nothing, linked nothing and had no run facts or drift plot.
    for section in ("This run", "Where to look"):
        assert f"<h2>{section}</h2>" in page
    count = int(option("01_stream_transactions", "--count", "100000"))
    assert "seed 7" in page and f"{count:,}" in page and "USD " in page and "XGBoost image 3.2-0" in page
    assert page.count('<td class="why">') >= 20
    assert re.search(r"aws --endpoint-url http://127\.0\.0\.1:\d+ --region us-east-1 s3 ls s3://\S+/features/", page)
    assert '<svg role="img" aria-label="drift distance per feature' in page and "threshold 0.1" in page


def browser() -> str | None:
    return next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)


def test_the_report_in_a_real_browser_loads_every_image_and_has_no_blank_band(by_hand, tmp_path):
    """Headless Chromium renders the page: every image loads, the page is as tall as its
    content, and no band of it is blank (a missing plot or an empty section would be)."""
    chromium = browser()
    if chromium is None:
        if os.environ.get("FRAUDLAB_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (FRAUDLAB_REQUIRE_BROWSER): .ci/run installs it from Debian's packages")
        pytest.skip("Chromium not installed (`apt install chromium`): the report's browser test needs it; CI installs it")
    _, _, workdir = by_hand
    report = workdir / "build/lab-report"
    probe = tmp_path / "probe"
    shutil.copytree(report, probe)
    page = (probe / "index.html").read_text()
    # The probe copy reports what the browser saw in its title, which --dump-dom prints.
    script = ("<script>window.addEventListener('load', () => { document.title = JSON.stringify({"
              "height: document.documentElement.scrollHeight, "
              "images: [...document.images].map(i => i.complete && i.naturalWidth > 0), "
              "svgs: document.querySelectorAll('svg').length}); });</script>")
    (probe / "index.html").write_text(page.replace("</body>", script + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    # Measured at the screenshot's width: a narrower window makes a taller page.
    dom = subprocess.run([chromium, *flags, "--window-size=1200,800", "--dump-dom", (probe / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    seen = json.loads(html.unescape(re.search(r"<title>(.*?)</title>", dom.stdout).group(1)))
    assert seen["images"] == [True] * 4 and seen["svgs"] == 1, seen
    assert 2500 < seen["height"] < 12000, seen

    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--window-size=1200,{seen['height']}", f"--screenshot={shot}", (report / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("L")
    assert image.size == (1200, seen["height"])
    pixels = np.asarray(image)
    blank = (pixels > 245).all(axis=1)  # rows with nothing drawn on them
    drawn = np.flatnonzero(~blank)
    longest, run = 0, 0
    for row_is_blank in blank[drawn[0]:drawn[-1] + 1]:
        run = run + 1 if row_is_blank else 0
        longest = max(longest, run)
    assert longest < 120, f"a blank band of {longest} px"
    assert seen["height"] - drawn[-1] < 120  # the page ends where its content does


def test_the_drift_step_found_the_clean_window_clean_and_the_drift(by_hand):
    _, _, workdir = by_hand
    drift = results_of(workdir, "08_monitor_drift")
    assert drift["clean_violations"] == 0 and drift["drift_violations"] > 0


def test_safe_deployment_splits_shadows_and_rolls_back_the_failing_canary(by_hand):
    """Step 09 as the README runs it: the A/B split within tolerance of the weights, the
    shadow copied every request and answered no one, the failing canary rolled back by the
    5xx alarm to the endpoint stack's own configuration, which serves again."""
    _, _, workdir = by_hand
    requests = int(option("09_safe_deployment", "--requests", "2000"))
    figures = results_of(workdir, "09_safe_deployment")
    # Binomial: 4.5 standard deviations of the challenger's count at weight 0.1, then 0.5.
    assert sum(figures["ab_split"].values()) == requests
    assert abs(figures["ab_split"]["Challenger"] - requests / 10) <= 4.5 * (requests * 0.09) ** 0.5, figures["ab_split"]
    assert abs(figures["shifted_split"]["Challenger"] - requests / 4) <= 4.5 * (requests / 2 * 0.25) ** 0.5, figures["shifted_split"]
    # Each variant's own CloudWatch count: the challenger's is exactly what it answered; the
    # champion's may hold earlier traffic published late (CloudWatch's figures trail).
    answered = {v: figures["ab_split"][v] + figures["shifted_split"][v] for v in ("AllTraffic", "Challenger")}
    assert figures["variant_invocations"]["Challenger"] == answered["Challenger"]
    assert figures["variant_invocations"]["AllTraffic"] >= answered["AllTraffic"]
    assert all(0 < figures["variant_model_latency_ms"][v] < 1000 for v in answered)  # each variant's own ModelLatency
    assert figures["shadow_answered"] == {"AllTraffic": requests // 2} and figures["shadow_copies"] == requests // 2
    sequence = [what for _, what in figures["rollback_sequence"]]
    assert sequence.index("endpoint Updating") < sequence.index("first failed request (the canary)") < sequence.index("endpoint RollingBack")
    assert any(what.endswith("in ALARM") for what in sequence) and sequence[-1] == "endpoint InService"
    assert figures["rollback_outcomes"]["error 500"] >= 1 and figures["after_rollback"] == {"AllTraffic": 100}
    assert figures["endpoint_config"].startswith("FraudLab-Endpoint-EndpointConfig-")  # CloudFormation's, not one step 09 made
