"""Step 09 — Safe deployment: a challenger beside the champion (A/B, shadow), then a canary that rolls back.

What you do: run `python lab_scripts/09_safe_deployment.py [--challenger <model package
ARN>] [--requests 2000] [--canary-percent 50] [--bake-seconds 300]`.
What you see, on the lab's endpoint (the champion: the model step 04 approved), with the
challenger (by default the newest version the pipeline registered, steps 07-08):
(a) A/B test: the endpoint updated to two production variants, the champion (AllTraffic)
    at weight 0.9 and the Challenger at 0.1; --requests payments scored one by one, each
    answered by one variant; the split measured, and each variant's CloudWatch figures
    (invocations, model latency) and alert rate side by side; then
    UpdateEndpointWeightsAndCapacities moves to 0.5/0.5 in place and the split follows.
(b) Shadow test: the challenger as a shadow variant: every request is copied to it, its
    answers go to data capture and never to the caller; the step shows that every answer
    came from the champion and compares the shadow's alert rate with the champion's.
(c) The endpoint back on its own configuration, then a blue/green update to a challenger
    made to fail (its archive claims more boosting rounds than it has: it loads and answers
    /ping, then every prediction fails) with canary traffic shifting (--canary-percent of
    the traffic for --bake-seconds) and automatic rollback on the endpoint's 5xx alarm:
    payments keep flowing, the canary's share fails, the alarm fires, the endpoint rolls
    back to the champion. The sequence is printed with timestamps.
The endpoint ends on its CloudFormation configuration; the models and endpoint configs this
step made are tagged, and step 10 deletes them.

Where to look: SageMaker > Inference > Endpoints > the endpoint (variants, weights,
deployment configuration); CloudWatch > Metrics > AWS/SageMaker by EndpointName and
VariantName; CloudWatch > Alarms > the 5xx alarm's history; S3 capture/<endpoint>/Challenger/.

Exam task statements: MLA-C01 3.1 (deployment strategies: A/B variants, shadow testing,
blue/green with canary traffic shifting and rollback), 4.1 (monitor model performance in
production by using A/B testing); MLS-C01 4.4 (deploy and operationalize ML solutions).
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import numpy as np
import xgboost as xgb

from labkit import console, polling, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.outputs import lab_outputs, stack_outputs, stack_prefix
from labkit.pipelines import last_trained_archive
from labkit.sagemaker import TAGS, feature_schema, split_uri
from labkit.session import aws_session, client, each
from labkit.traffic import csv_body, features_of, landed_history, release_freed_memory
from processing.model_artifact import MODEL_FILE, pack, unpack

CHAMPION = "AllTraffic"  # the endpoint stack's variant: its autoscaling and alarms name it
CHALLENGER = "Challenger"


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--challenger", help="model package ARN of the challenger (default: the newest version that is not the champion)")
    parser.add_argument("--requests", type=int, default=2000, help="payments scored in the A/B test (half as many after the shift and in the shadow test)")
    parser.add_argument("--canary-percent", type=int, default=50, help="share of the traffic the canary takes (at most 50)")
    parser.add_argument("--bake-seconds", type=int, default=300, help="how long the canary bakes before the rest of the traffic moves")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each endpoint update")
    args = parser.parse_args()
    if not 1 <= args.canary_percent <= 50:
        parser.error("--canary-percent must be 1-50 (SageMaker: a canary is at most half the new fleet)")
    if args.requests < 100:
        parser.error("--requests must be at least 100")
    return args


def stamp(when: datetime | None = None) -> str:
    """A UTC time to the millisecond, as the rollback sequence lists it."""
    return f"{when or datetime.now(timezone.utc):%H:%M:%S.%f}"[:-3]


def wait_in_service(sagemaker, name: str, timeout: float, traffic=None) -> tuple[dict, list[tuple[str, str]]]:
    """Poll the endpoint until its update ends (an update is Updating from the call on),
    noting each status with its time; `traffic` (called between polls) keeps payments flowing."""
    started, seen, waits = time.monotonic(), [], polling.intervals()
    while True:
        described = sagemaker.describe_endpoint(EndpointName=name)
        status = described["EndpointStatus"]
        if not seen or seen[-1][1] != f"endpoint {status}":
            seen.append((stamp(), f"endpoint {status}"))
            console.note(f"{seen[-1][0]} endpoint {status}")
        if status == "InService":
            return described, seen
        if status in ("Failed", "UpdateRollbackFailed"):
            raise LabError(f"{name} {status}: {described.get('FailureReason', 'no reason given')}")
        if time.monotonic() - started > timeout:
            raise LabError(f"{name} still {status} after {timeout:.0f} s: see SageMaker > Endpoints")
        if traffic is not None:
            traffic()
        else:
            time.sleep(next(waits))


def update(sagemaker, name: str, config: str, timeout: float, deployment: dict | None = None, traffic=None) -> tuple[dict, list]:
    sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config, **({"DeploymentConfig": deployment} if deployment else {}))
    console.note(f"{stamp()} UpdateEndpoint -> {config}")
    return wait_in_service(sagemaker, name, timeout, traffic)


def endpoint_config(sagemaker, name: str, variants: list[dict], base: dict, shadows: list[dict] | None = None) -> str:
    """A config like the endpoint's own (capture, KMS), with `variants` (and shadows)."""
    sagemaker.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=variants, **({"ShadowProductionVariants": shadows} if shadows else {}),
        **{k: base[k] for k in ("DataCaptureConfig", "KmsKeyId") if k in base}, Tags=TAGS,
    )
    return name


def variant(name: str, model: str, champion: dict, weight: float) -> dict:
    return {"VariantName": name, "ModelName": model, "InstanceType": champion["InstanceType"],
            "InitialInstanceCount": champion.get("InitialInstanceCount", 1), "InitialVariantWeight": weight}


def challenger_container(sagemaker, outputs: dict, champion: dict, chosen: str | None) -> tuple[dict, str]:
    """(the challenger's serving container, what it is): the package given, else the newest
    registered version that is not the champion, else the newest model the pipeline trained
    (the gate may have refused to register it: testing it beside the champion is how a team
    gathers the evidence the offline figures could not give)."""
    champion_package = champion.get("PrimaryContainer", {}).get("ModelPackageName")
    if chosen:
        package = sagemaker.describe_model_package(ModelPackageName=chosen)
        return package["InferenceSpecification"]["Containers"][0], f"{chosen.split('/', 1)[1]} ({package['ModelApprovalStatus']})"
    packages = sorted(each(sagemaker, "list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=outputs["ModelPackageGroupName"]),
                      key=lambda p: p["CreationTime"], reverse=True)
    for summary in packages:
        if summary["ModelPackageArn"] != champion_package:
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            return package["InferenceSpecification"]["Containers"][0], f"{summary['ModelPackageArn'].split('/', 1)[1]} ({package['ModelApprovalStatus']})"
    trained = last_trained_archive(sagemaker, outputs["PipelineName"])
    if trained is None:
        raise LabError("no challenger: no other model version and no pipeline run: run lab_scripts/07_run_pipeline.py first (or pass --challenger)")
    served = sagemaker.describe_model_package(ModelPackageName=champion_package)["InferenceSpecification"]["Containers"][0] if champion_package else champion["PrimaryContainer"]
    return {**served, "ModelDataUrl": trained[0]}, f"the model pipeline execution {trained[1]} trained (not registered: the gate refused it)"


def model_like(sagemaker, name: str, champion: dict, container: dict) -> str:
    """A model serving `container` with the champion model's role, VPC and isolation."""
    sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=champion["ExecutionRoleArn"], EnableNetworkIsolation=champion.get("EnableNetworkIsolation", False),
        PrimaryContainer={k: container[k] for k in ("Image", "ModelDataUrl", "Environment") if k in container},
        **({"VpcConfig": champion["VpcConfig"]} if champion.get("VpcConfig") else {}), Tags=TAGS,
    )
    return name


def broken_archive(archive: bytes) -> bytes:
    """The serving archive with its booster's best_iteration raised past its trees: the
    container loads it and answers /ping, then every prediction fails with a 500."""
    members = unpack(archive)
    booster = xgb.Booster()
    booster.load_model(bytearray(members[MODEL_FILE]))
    booster.set_attr(best_iteration="1000000")
    return pack({**members, MODEL_FILE: bytes(booster.save_raw("ubj"))})


# About as many payments as the step sends with its defaults (--requests, then half as many
# twice, and the canary's; Traffic cycles through them): a larger set only means more
# history to compute features from.
RECENT_PAYMENTS = 5_000


def recent_payments(s3, bucket: str, raw_prefix: str) -> np.ndarray:
    """Feature rows of the latest landed payments (the last tenth, at most RECENT_PAYMENTS),
    as step 06 computes them. The history read for them is freed when this returns: the
    step holds only these rows while two fleets of containers are up."""
    history, labels = landed_history(s3, bucket, raw_prefix)
    schema = feature_schema(s3, bucket)
    recent = history.index[history["timestamp"] >= history["timestamp"].quantile(0.9)][-RECENT_PAYMENTS:]
    return features_of(history, labels, recent, schema["label_delay_days"])


class Traffic:
    """Held-out payments sent one request each, cycling; who answered and how, counted."""

    def __init__(self, runtime, endpoint: str, rows: np.ndarray) -> None:
        self.runtime, self.endpoint, self.rows, self.sent = runtime, endpoint, rows, 0

    def one(self) -> tuple[str, dict | None]:
        """(variant or error, prediction) of the next payment."""
        row = self.rows[self.sent % len(self.rows)]
        self.sent += 1
        try:
            reply = self.runtime.invoke_endpoint(EndpointName=self.endpoint, ContentType="text/csv", Accept="application/json", Body=csv_body(row[None, :]))
        except self.runtime.exceptions.ModelError as error:
            return f"error {error.response.get('OriginalStatusCode', '')}".strip(), None
        return reply["InvokedProductionVariant"], json.loads(reply["Body"].read())["predictions"][0]

    def many(self, count: int) -> tuple[Counter, dict[str, list[bool]]]:
        answered, alerts = Counter(), {}
        for _ in range(count):
            who, prediction = self.one()
            answered[who] += 1
            if prediction is not None:
                alerts.setdefault(who, []).append(bool(prediction["is_fraud"]))
        return answered, alerts


def statistic(cloudwatch, endpoint: str, variant_name: str, metric: str, kind: str) -> list[dict]:
    """The variant's `metric` in CloudWatch over the last two hours, hourly `kind` datapoints."""
    now = datetime.now(timezone.utc)
    return cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName=metric, StartTime=now - timedelta(hours=2), EndTime=now + timedelta(minutes=1),
        Period=3600, Statistics=[kind], Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant_name}],
    )["Datapoints"]


def invocations(cloudwatch, endpoint: str, variant_name: str) -> float:
    return sum(p["Sum"] for p in statistic(cloudwatch, endpoint, variant_name, "Invocations", "Sum"))


def model_latency_ms(cloudwatch, endpoint: str, variant_name: str) -> float:
    """Mean ModelLatency (the container's time per request), in ms, over the last two hours."""
    points = statistic(cloudwatch, endpoint, variant_name, "ModelLatency", "Average")
    return max(points, key=lambda p: p["Timestamp"])["Average"] / 1000 if points else float("nan")


def counted(cloudwatch, endpoint: str, before: dict[str, float], expected: Counter, timeout: float = 300) -> dict[str, int]:
    """Invocations per variant since `before` was read, polled until CloudWatch shows at least
    `expected` (its metrics arrive a minute or two late on AWS) or `timeout` passes."""
    started, waits = time.monotonic(), polling.intervals(first=0.5)
    while True:
        counts = {name: int(invocations(cloudwatch, endpoint, name) - before.get(name, 0)) for name in expected}
        if all(counts[name] >= expected[name] for name in expected) or time.monotonic() - started > timeout:
            return counts
        time.sleep(next(waits))


# A NamedTuple, not a dataclass: as step 04's Evaluated, for the tests that load the step.
class Lab(NamedTuple):
    """What the three parts share: the endpoint, its own configuration, the two models, the traffic."""

    s3: object
    sagemaker: object
    cloudwatch: object
    bucket: str  # the lab bucket
    name: str  # the endpoint
    own_config: str  # its CloudFormation configuration, where it ends
    base: dict  # that configuration, described
    champion: dict  # the champion's model, described
    challenger: str  # the challenger's model (made by this step)
    container: dict  # the challenger's serving container
    suffix: str  # names this run's configs and models
    traffic: Traffic
    timeout: float

    @property
    def champion_variant(self) -> dict:
        return self.base["ProductionVariants"][0]


def champion_and_challenger(session, outputs: dict, chosen: str | None, timeout: float) -> Lab:
    """The endpoint in service, its champion, a challenger model beside it, and recent payments to send."""
    name = stack_outputs(session, f"{stack_prefix()}-Endpoint").get("EndpointName")
    if name is None:
        raise LabError("no endpoint yet: run lab_scripts/05_deploy_endpoint.py first")
    s3, sagemaker, runtime, cloudwatch = (client(session, s) for s in ("s3", "sagemaker", "sagemaker-runtime", "cloudwatch"))
    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    if endpoint["EndpointStatus"] != "InService":
        raise LabError(f"{name} is {endpoint['EndpointStatus']}: wait until it is InService, then rerun")
    own_config = endpoint["EndpointConfigName"]
    base = sagemaker.describe_endpoint_config(EndpointConfigName=own_config)
    champion_variant = base["ProductionVariants"][0]
    champion = sagemaker.describe_model(ModelName=champion_variant["ModelName"])
    container, described_as = challenger_container(sagemaker, outputs, champion, chosen)
    suffix = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    challenger = model_like(sagemaker, f"fraudlab-challenger-{suffix}", champion, container)
    console.heading(f"Champion {champion_variant['ModelName']} vs challenger: {described_as}")

    console.heading("Payments to send: recent payments, features computed client-side (as step 06)")
    traffic = Traffic(runtime, name, recent_payments(s3, outputs["LabBucketName"], outputs["RawPrefix"]))
    release_freed_memory()  # the history behind them
    console.done(f"{len(traffic.rows):,} recent payments to cycle through")
    return Lab(s3, sagemaker, cloudwatch, outputs["LabBucketName"], name, own_config, base, champion, challenger, container, suffix, traffic, timeout)


def ab_test(lab: Lab, requests: int) -> dict:
    """(a) Two production variants at 0.9 / 0.1, then 0.5 / 0.5 in place: who answered, and
    each variant's CloudWatch figures."""
    sagemaker, cloudwatch, name, champion_variant = lab.sagemaker, lab.cloudwatch, lab.name, lab.champion_variant
    console.heading(f"(a) A/B test: {CHAMPION} 0.9, {CHALLENGER} 0.1")
    ab = endpoint_config(sagemaker, f"{name}-ab-{lab.suffix}", [variant(CHAMPION, champion_variant["ModelName"], champion_variant, 0.9),
                                                                 variant(CHALLENGER, lab.challenger, champion_variant, 0.1)], lab.base)
    update(sagemaker, name, ab, lab.timeout)
    before = {v: invocations(cloudwatch, name, v) for v in (CHAMPION, CHALLENGER)}
    split, alerts = lab.traffic.many(requests)
    console.table([(v, f"{n:,}", f"{n / requests:.1%}", f"{np.mean(alerts.get(v, [0])):.2%}") for v, n in sorted(split.items())],
                  ("variant", "answered", "share (weight 0.9 / 0.1)", "alert rate"))
    sagemaker.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[
        {"VariantName": CHAMPION, "DesiredWeight": 0.5}, {"VariantName": CHALLENGER, "DesiredWeight": 0.5}])
    wait_in_service(sagemaker, name, lab.timeout)
    shifted, _ = lab.traffic.many(requests // 2)
    console.table([(v, f"{n:,}", f"{n / (requests // 2):.1%}") for v, n in sorted(shifted.items())], ("variant", "answered", "share (weight 0.5 / 0.5)"))
    figures = counted(cloudwatch, name, before, split + shifted)
    latency = {v: model_latency_ms(cloudwatch, name, v) for v in figures}
    console.table([(v, f"{n:,}", f"{split.get(v, 0) + shifted.get(v, 0):,}", f"{latency[v]:.2f}", f"{np.mean(alerts.get(v, [0])):.2%}")
                   for v, n in figures.items()],
                  ("variant", "Invocations (CloudWatch)", "answered (this step)", "ModelLatency mean, ms", "alert rate"))
    return {"ab_split": dict(split), "shifted_split": dict(shifted), "variant_invocations": figures, "variant_model_latency_ms": latency}


def shadow_test(lab: Lab, requests: int) -> dict:
    """(b) The challenger as a shadow variant: a copy of every request, no answer to anyone."""
    sagemaker, cloudwatch, name, champion_variant = lab.sagemaker, lab.cloudwatch, lab.name, lab.champion_variant
    console.heading(f"(b) Shadow test: {CHALLENGER} gets a copy of every request, answers nobody")
    shadow_config = endpoint_config(sagemaker, f"{name}-shadow-{lab.suffix}", [variant(CHAMPION, champion_variant["ModelName"], champion_variant, 1.0)], lab.base,
                                    shadows=[variant(CHALLENGER, lab.challenger, champion_variant, 1.0)])
    update(sagemaker, name, shadow_config, lab.timeout)
    before = {CHALLENGER: invocations(cloudwatch, name, CHALLENGER)}
    answered, _ = lab.traffic.many(requests)
    if set(answered) != {CHAMPION}:
        raise LabError(f"answers came from {dict(answered)}: a shadow variant must never answer")
    copies = counted(cloudwatch, name, before, Counter({CHALLENGER: sum(answered.values())}))[CHALLENGER]
    console.done(f"{sum(answered.values()):,} answered by {CHAMPION}; {copies:,} copies served by the shadow (CloudWatch Invocations of {CHALLENGER})")
    console.note(f"the shadow's answers are in s3://{lab.bucket}/capture/{name}/{CHALLENGER}/: compare them with the champion's before promoting it")
    return {"shadow_answered": dict(answered), "shadow_copies": copies}


def canary_with_rollback(lab: Lab, canary_percent: int, bake_seconds: int) -> dict:
    """(c) Back on the endpoint's own configuration, then a blue/green canary to a challenger
    made to fail: the 5xx alarm fires and the endpoint rolls back; the sequence, timestamped."""
    s3, sagemaker, cloudwatch, bucket, name, traffic = lab.s3, lab.sagemaker, lab.cloudwatch, lab.bucket, lab.name, lab.traffic
    console.heading("(c) Blue/green canary to a challenger made to fail, rolled back by the 5xx alarm")
    update(sagemaker, name, lab.own_config, lab.timeout)
    alarms = [a for a in each(cloudwatch, "describe_alarms", "MetricAlarms")
              if {"Name": "EndpointName", "Value": name} in a.get("Dimensions", []) and a["MetricName"] == "Invocation5XXErrors"]
    if not alarms:
        raise LabError(f"no Invocation5XXErrors alarm on {name}: redeploy the endpoint stack")
    alarm = alarms[0]["AlarmName"]
    if alarms[0]["StateValue"] == "ALARM":
        raise LabError(f"{alarm} is in ALARM already (errors in its last {alarms[0]['Period']} s): rerun when it is OK, or the canary rolls back at once")
    archive_bucket, archive_key = split_uri(lab.container["ModelDataUrl"])
    broken_key = f"models/broken/{lab.suffix}/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=broken_key, Body=broken_archive(s3.get_object(Bucket=archive_bucket, Key=archive_key)["Body"].read()))
    broken = model_like(sagemaker, f"fraudlab-broken-{lab.suffix}", lab.champion, {**lab.container, "ModelDataUrl": f"s3://{bucket}/{broken_key}"})
    canary = endpoint_config(sagemaker, f"{name}-canary-{lab.suffix}", [variant(CHAMPION, broken, lab.champion_variant, 1.0)], lab.base)
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary_percent},
                                            "WaitIntervalInSeconds": bake_seconds},
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    outcomes, first_error = Counter(), []

    def flowing() -> None:
        who, _ = traffic.one()
        outcomes["answered" if who == CHAMPION else who] += 1
        if who.startswith("error") and not first_error:
            first_error.append(stamp())

    rolled, sequence = update(sagemaker, name, canary, lab.timeout, deployment, traffic=flowing)
    history = cloudwatch.describe_alarm_history(AlarmName=alarm, HistoryItemType="StateUpdate", StartDate=datetime.now(timezone.utc) - timedelta(hours=1))
    fired = next((h["Timestamp"] for h in history["AlarmHistoryItems"] if "to ALARM" in h["HistorySummary"]), None)
    steps = sorted([*sequence, *((t, "first failed request (the canary)") for t in first_error),
                    *(((stamp(fired), f"alarm {alarm} in ALARM"),) if fired else ())], key=lambda step: step[0])
    console.table(steps, ("UTC", "what happened"))
    if rolled["EndpointConfigName"] != lab.own_config:
        raise LabError(f"{name} is on {rolled['EndpointConfigName']}, not its own {lab.own_config}: the rollback did not happen")
    after, _ = traffic.many(100)
    console.done(f"rolled back to {lab.own_config}: {dict(outcomes)} during the update; afterwards {after.get(CHAMPION, 0)}/100 answered")
    return {"rollback_sequence": steps, "rollback_outcomes": dict(outcomes), "after_rollback": dict(after), "endpoint_config": rolled["EndpointConfigName"]}


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "RawPrefix", "ModelPackageGroupName", "PipelineName")
    lab = champion_and_challenger(session, outputs, args.challenger, args.timeout)

    ab = ab_test(lab, args.requests)
    shadow = shadow_test(lab, args.requests // 2)
    canary = canary_with_rollback(lab, args.canary_percent, args.bake_seconds)
    results.record(
        f"A/B {ab['ab_split'].get(CHALLENGER, 0) / args.requests:.1%} to the challenger (weight 0.1), "
        f"{ab['shifted_split'].get(CHALLENGER, 0) / (args.requests // 2):.1%} after 0.5; "
        f"shadow {shadow['shadow_copies']} copies; canary rolled back ({canary['rollback_outcomes'].get('error 500', 0)} failed requests)",
        **ab, **shadow, **canary,
    )
    return 0


if __name__ == "__main__":
    run_step(main)
