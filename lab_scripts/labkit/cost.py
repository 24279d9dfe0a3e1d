"""Pre-deploy cost estimate: what the lab's stacks and steps cost, and what forgetting teardown costs.

    make cost
    PYTHONPATH=lab_scripts .venv/bin/python -m labkit.cost [--region us-east-1] [--hours-forgotten 24]
                                                          [-c fraudlab:serverless=true ...]

Reads the fraudlab: settings from cdk.json (plus -c overrides, as cdk does) and the
on-demand list prices in prices.json beside this file; needs no credentials or network.
Every quantity below is an estimate for a default run; the prices say where they come from.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
PRICES_JSON = Path(__file__).with_name("prices.json")
NAMESPACE = "fraudlab:"

HOURS_PER_MONTH = 730  # AWS prorates monthly fees (KMS keys, metrics, alarms) over 730 hours
GB = 1024**3
MB = 1024**2

# One lab run, as documented: about 2 hours of wall time; the endpoint (and the drift
# monitoring deployed with it) is up for about the last hour, then everything is destroyed.
LAB_HOURS = 2.0
ENDPOINT_HOURS = 1.0

FLOW_LOG_BYTES_PER_RUN = 10 * MB
BUCKET_BYTES = 50 * MB  # lab bucket + access-log bucket after a default run (data, features, model, capture)
S3_PUTS_PER_RUN = 1_000
S3_GETS_PER_RUN = 2_000
KMS_REQUESTS_PER_RUN = 1_000
ENDPOINT_DATA_BYTES_PER_RUN = 100 * MB  # API calls, logs and metrics through interface endpoints
FIREHOSE_RECORDS = 20_000
FIREHOSE_RECORD_BYTES = 300
FIREHOSE_BILLING_STEP = 5 * 1024  # each record is billed as a whole multiple of 5 KB

INTERFACE_ENDPOINTS = 6  # SageMaker API + runtime, STS, Logs, ECR API + Docker (stacks/network_stack.py)
FEATURE_JOB = ("ml.m5.xlarge", 5, 30)  # instance, billed minutes (start-up included), volume GB
TRAINING_JOB = ("ml.m5.large", 5, 10)
TUNING_JOBS = 10
SERVERLESS_INVOCATIONS = 1_000
SERVERLESS_SECONDS = 0.010
SERVERLESS_MEMORY_GB = 2.0  # 2048 MB
SERVERLESS_BYTES_PER_INVOCATION = 2 * 1024  # request + response
ENDPOINT_ALARMS = 2
DRIFT_MONITORS = ("kit", "modelMonitor", "off")
# Step 09: four endpoint updates, each with a new fleet beside the old for ~15 minutes:
# about two extra instance-hours of the endpoint's instance type in all.
SAFE_DEPLOYMENT_EXTRA_INSTANCE_HOURS = 2.0
EVALUATION_JOB = ("ml.m5.xlarge", 4, 30)  # step 07's evaluation step: instance, billed minutes, volume GB
TRANSFORM_JOB = ("ml.m5.large", 5)  # step 06's batch transform: instance, billed minutes (start-up included)
DRIFT_JOB = ("ml.m5.large", 4)  # fraudlab:monitorInstanceType, billed minutes per run
DRIFT_STEP_JOBS = 3  # step 08: baseline + 2 checks
MODEL_MONITOR_JOB = ("ml.m5.large", 5)  # the same instance type; AWS's analyzer starts slower
# What processing/drift_monitor.py publishes per run: a drift distance per model feature
# (25) and for the one-hot category read back as one feature, the violation count and
# the captured row count.
DRIFT_METRICS = 25 + 1 + 2
DRIFT_ALARMS = 1


class CostError(Exception):
    """A setting or price is missing or malformed; str() is the one line that says what to do."""


@dataclass(frozen=True)
class Settings:
    stack_prefix: str
    max_azs: int
    interface_endpoints: bool
    endpoint_instance_type: str
    endpoint_min_instances: int
    serverless: bool
    drift_monitor: str
    drift_schedule_hours: int


@dataclass(frozen=True)
class LineItem:
    key: str  # stable identifier (tests, scripts); `resource` is the text shown
    resource: str
    where: str  # stack or lab step
    hourly: float  # USD per hour while it exists and nobody tears it down
    lab_run: float  # USD for one full lab run
    in_total: bool = True  # False: a variation shown beside the totals, not in them

    @property
    def per_day(self) -> float:
        return self.hourly * 24


@dataclass(frozen=True)
class Totals:
    lab_run: float
    hourly: float
    per_day: float
    hours_forgotten: float
    forgotten: float


class Prices:
    """One region of prices.json: usd(service, item) with a clear error for a missing entry."""

    def __init__(self, document: dict[str, Any], region: str) -> None:
        regions = document["regions"]
        if region not in regions:
            raise CostError(
                f"no prices for region {region} in prices.json: add them or choose one of {', '.join(sorted(regions))}"
            )
        self.region = region
        self.retrieved = document["retrieved"]
        self._table = regions[region]

    def usd(self, service: str, item: str) -> float:
        entry = self._table.get(service, {}).get(item)
        if entry is None:
            known = ", ".join(sorted(self._table.get(service, {}))) or "none"
            raise CostError(
                f"no {service} price for {item} in region {self.region} in prices.json: add it or choose one of {known}"
            )
        return float(entry["usd"])


def load_prices(region: str, path: Path = PRICES_JSON) -> Prices:
    return Prices(json.loads(path.read_text()), region)


def load_settings(overrides: list[str] | None = None, cdk_json: Path = CDK_JSON) -> Settings:
    """cdk.json's fraudlab: context with `key=value` overrides on top, as `cdk -c` applies them."""
    context = dict(json.loads(cdk_json.read_text()).get("context", {}))
    for pair in overrides or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CostError(f"-c {pair!r} is not key=value (e.g. -c fraudlab:serverless=true)")
        context[key if key.startswith(NAMESPACE) else NAMESPACE + key] = value
    get = lambda key, default=None: context.get(NAMESPACE + key, default)  # noqa: E731
    drift = str(get("driftMonitor", "kit"))
    if drift not in DRIFT_MONITORS:
        raise CostError(f"context key {NAMESPACE}driftMonitor={drift!r} must be one of {', '.join(DRIFT_MONITORS)}")
    return Settings(
        stack_prefix=str(get("stackPrefix", "FraudLab")),
        max_azs=_int(get("maxAzs"), "maxAzs", 2, 3),
        interface_endpoints=_bool(get("interfaceEndpoints", False), "interfaceEndpoints"),
        endpoint_instance_type=str(get("endpointInstanceType")),
        endpoint_min_instances=_int(get("endpointMinInstances"), "endpointMinInstances", 1, 10),
        serverless=_bool(get("serverless", False), "serverless"),
        drift_monitor=drift,
        drift_schedule_hours=_int(get("driftScheduleHours", 1), "driftScheduleHours", 1, 24 * 7),
    )


def _int(value: Any, key: str, low: int, high: int) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value), 10)
    except (TypeError, ValueError):
        raise CostError(
            f"context key {NAMESPACE}{key}={value!r} is not a whole number: fix it in cdk.json or -c"
        ) from None
    if not low <= number <= high:
        raise CostError(f"context key {NAMESPACE}{key}={number} must be between {low} and {high}")
    return number


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    words = {"true": True, "false": False}
    if str(value).lower() not in words:
        raise CostError(f"context key {NAMESPACE}{key}={value!r} is not true or false")
    return words[str(value).lower()]


def _job(prices: Prices, kind: str, instance: str, minutes: float, volume_gb: float = 0) -> float:
    """One SageMaker job: instance time (billed per second, start-up included) plus its volume."""
    hours = minutes / 60
    storage = volume_gb * prices.usd("sagemaker", "ml_storage_gb_month") / HOURS_PER_MONTH * hours
    return prices.usd(f"sagemaker_{kind}", instance) * hours + storage


def _persistent(key: str, resource: str, where: str, hourly: float, hours_in_lab: float) -> LineItem:
    return LineItem(key, resource, where, hourly=hourly, lab_run=hourly * hours_in_lab)


def _one_off(key: str, resource: str, where: str, usd: float, in_total: bool = True) -> LineItem:
    return LineItem(key, resource, where, hourly=0.0, lab_run=usd, in_total=in_total)


def network_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    where = f"{cfg.stack_prefix}-Network"
    az_hour = prices.usd("vpc", "interface_endpoint_az_hour")
    logs_gb = FLOW_LOG_BYTES_PER_RUN / GB
    logs_rate = prices.usd("cloudwatch", "logs_ingest_gb") + prices.usd("cloudwatch", "logs_storage_gb_month")
    items = [
        _one_off("vpc", "VPC, isolated subnets, route tables, S3 gateway endpoint (free)", where, 0.0),
        # Flow records keep coming while the VPC lives: assume the lab's rate (10 MB per 2 h) goes on.
        LineItem("flow-logs", "VPC flow logs to CloudWatch Logs (~10 MB per run)", where,
                 hourly=logs_gb / LAB_HOURS * logs_rate, lab_run=logs_gb * logs_rate),
    ]
    endpoints = 0
    if cfg.interface_endpoints:
        endpoints += INTERFACE_ENDPOINTS
        resource = f"{INTERFACE_ENDPOINTS} interface endpoints x {cfg.max_azs} AZs"
        items.append(_persistent("interface-endpoints", resource, where,
                                 INTERFACE_ENDPOINTS * cfg.max_azs * az_hour, LAB_HOURS))
    if cfg.drift_monitor == "kit":
        # The drift job publishes its metrics from inside the isolated VPC.
        endpoints += 1
        resource = f"CloudWatch (monitoring) interface endpoint x {cfg.max_azs} AZs"
        items.append(_persistent("monitoring-endpoint", resource, where, cfg.max_azs * az_hour, LAB_HOURS))
    if endpoints:
        items.append(_one_off("endpoint-data", "Interface endpoint data processed (~0.1 GB per run)", where,
                              ENDPOINT_DATA_BYTES_PER_RUN / GB * prices.usd("vpc", "interface_endpoint_gb")))
    return items


def data_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    where = f"{cfg.stack_prefix}-Data"
    billed_bytes = FIREHOSE_RECORDS * math.ceil(FIREHOSE_RECORD_BYTES / FIREHOSE_BILLING_STEP) * FIREHOSE_BILLING_STEP
    requests = (S3_PUTS_PER_RUN / 1000 * prices.usd("s3", "put_1k")
                + S3_GETS_PER_RUN / 1000 * prices.usd("s3", "get_1k"))
    return [
        _persistent("data-key", "KMS customer managed key (lab bucket, stream)", where,
                    prices.usd("kms", "key_month") / HOURS_PER_MONTH, LAB_HOURS),
        _one_off("kms-requests", f"KMS requests (~{KMS_REQUESTS_PER_RUN:,} per run)", where,
                 KMS_REQUESTS_PER_RUN / 10_000 * prices.usd("kms", "requests_10k")),
        _persistent("s3-storage", "S3 Standard, lab + access-log buckets (~50 MB)", where,
                    BUCKET_BYTES / GB * prices.usd("s3", "standard_gb_month") / HOURS_PER_MONTH, LAB_HOURS),
        _one_off("s3-requests", f"S3 requests (~{S3_PUTS_PER_RUN:,} PUT, ~{S3_GETS_PER_RUN:,} GET)", where, requests),
        _one_off("firehose", f"Firehose Direct PUT, {FIREHOSE_RECORDS:,} x {FIREHOSE_RECORD_BYTES} B billed as 5 KB",
                 where, billed_bytes / GB * prices.usd("firehose", "direct_put_gb")),
        _one_off("firehose-logs", "Firehose error logs (CloudWatch Logs, negligible)", where, 0.0),
    ]


def ml_platform_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    where = f"{cfg.stack_prefix}-MLPlatform"
    return [
        _one_off("model-registry", "Model package group (free)", where, 0.0),
        _persistent("alerts-key", "KMS customer managed key (alerts topic)", where,
                    prices.usd("kms", "key_month") / HOURS_PER_MONTH, LAB_HOURS),
        _one_off("sns", "SNS topic, email alerts (within 1,000 emails/month free)", where, 0.0),
        _one_off("pipeline", "SageMaker Pipeline (no charge of its own: its jobs are billed, step 07)", where, 0.0),
    ]


def step02_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    instance, minutes, volume = FEATURE_JOB
    return [_one_off("feature-job", f"Processing job 1 x {instance}, ~{minutes} min, {volume} GB", "step 02",
                     _job(prices, "processing", instance, minutes, volume))]


def step03_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    instance, minutes, volume = TRAINING_JOB
    one = _job(prices, "training", instance, minutes, volume)
    return [
        _one_off("training-job", f"Training job 1 x {instance}, ~{minutes} min, {volume} GB", "step 03", one),
        _one_off("training-tune", f"with --tune: {TUNING_JOBS} training jobs instead of 1", "step 03",
                 TUNING_JOBS * one, in_total=False),
    ]


def step04_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    return [_one_off("evaluate", "Evaluation runs locally; model registration free", "step 04", 0.0)]


def endpoint_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    where = f"{cfg.stack_prefix}-Endpoint"
    if cfg.serverless:
        compute = (SERVERLESS_INVOCATIONS * SERVERLESS_SECONDS * SERVERLESS_MEMORY_GB
                   * prices.usd("sagemaker", "serverless_gb_second"))
        data_gb = SERVERLESS_INVOCATIONS * SERVERLESS_BYTES_PER_INVOCATION / GB
        data = data_gb * prices.usd("sagemaker", "serverless_data_gb")
        fees = SERVERLESS_INVOCATIONS * prices.usd("sagemaker", "serverless_request")
        serving = _one_off("serverless", f"Serverless inference, {SERVERLESS_INVOCATIONS:,} x ~10 ms at 2048 MB",
                           where, compute + data + fees)
    else:
        count, instance = cfg.endpoint_min_instances, cfg.endpoint_instance_type
        serving = _persistent("endpoint-instances", f"Real-time endpoint {count} x {instance}", where,
                              count * prices.usd("sagemaker_hosting", instance), ENDPOINT_HOURS)
    alarms = _persistent("endpoint-alarms", f"{ENDPOINT_ALARMS} CloudWatch alarms", where,
                         ENDPOINT_ALARMS * prices.usd("cloudwatch", "alarm_month") / HOURS_PER_MONTH, ENDPOINT_HOURS)
    return [serving, alarms]


def step06_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    instance, minutes = TRANSFORM_JOB
    return [_one_off("batch-transform", f"Batch transform job 1 x {instance}, ~{minutes} min (a day of payments)", "step 06",
                     _job(prices, "transform", instance, minutes))]


def step07_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    """The pipeline's run: the feature and training jobs of steps 02-03 again, and its
    evaluation job; the drift alarm starts one more run in step 08."""
    features, training, evaluation = FEATURE_JOB, TRAINING_JOB, EVALUATION_JOB
    jobs = [
        _one_off("pipeline-features", f"Pipeline: Processing job 1 x {features[0]}, ~{features[1]} min (features)", "step 07",
                 _job(prices, "processing", *features)),
        _one_off("pipeline-training", f"Pipeline: Training job 1 x {training[0]}, ~{training[1]} min", "step 07",
                 _job(prices, "training", *training)),
        _one_off("pipeline-evaluation", f"Pipeline: Processing job 1 x {evaluation[0]}, ~{evaluation[1]} min (evaluation)", "step 07",
                 _job(prices, "processing", *evaluation)),
    ]
    if cfg.drift_monitor == "off":
        return jobs
    run = sum(job.lab_run for job in jobs)
    return [_one_off("drift-retraining", "Pipeline run started by the drift alarm (the 3 jobs again)", "step 08", run), *jobs]


def step09_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    """A/B, shadow and canary: blue/green updates run the new fleet beside the old one."""
    if cfg.serverless:
        return []
    instance = cfg.endpoint_instance_type
    return [_one_off("safe-deployment", f"{SAFE_DEPLOYMENT_EXTRA_INSTANCE_HOURS:g} extra instance-hours of {instance} (4 blue/green updates)", "step 09",
                     SAFE_DEPLOYMENT_EXTRA_INSTANCE_HOURS * prices.usd("sagemaker_hosting", instance))]


def monitoring_items(cfg: Settings, prices: Prices) -> list[LineItem]:
    if cfg.drift_monitor == "off":
        return []
    where = f"{cfg.stack_prefix}-Monitoring"
    every = cfg.drift_schedule_hours
    schedule = "hourly" if every == 1 else f"every {every} h"
    metrics = _persistent("drift-metrics", f"{DRIFT_METRICS} custom metrics (drift per feature, violations, rows)", where,
                          DRIFT_METRICS * prices.usd("cloudwatch", "metric_month") / HOURS_PER_MONTH, ENDPOINT_HOURS)
    alarm = _persistent("drift-alarm", f"{DRIFT_ALARMS} CloudWatch alarm", where,
                        DRIFT_ALARMS * prices.usd("cloudwatch", "alarm_month") / HOURS_PER_MONTH, ENDPOINT_HOURS)
    if cfg.drift_monitor == "modelMonitor":
        instance, minutes = MODEL_MONITOR_JOB
        run = _job(prices, "processing", instance, minutes)
        return [
            _persistent("drift-schedule", f"Model Monitor data-quality job {instance}, ~{minutes} min, {schedule}",
                        where, run / every, ENDPOINT_HOURS),
            metrics,
            alarm,
        ]
    instance, minutes = DRIFT_JOB
    run = _job(prices, "processing", instance, minutes)
    # EventBridge Scheduler: 24/every invocations a day stay far inside the 14M/month free tier.
    return [
        _persistent("drift-schedule", f"Drift job {instance}, ~{minutes} min, {schedule}", where,
                    run / every, ENDPOINT_HOURS),
        _one_off("scheduler", "EventBridge Scheduler (within 14M/month free)", where, 0.0),
        metrics,
        alarm,
        _one_off("drift-step", f"{DRIFT_STEP_JOBS} drift jobs {instance}, ~{minutes} min (baseline + 2 checks)",
                 "step 08", DRIFT_STEP_JOBS * run),
    ]


def estimate(cfg: Settings, prices: Prices) -> list[LineItem]:
    """Every billable resource the stacks and steps create, in the order the lab creates them."""
    builders = (network_items, data_items, ml_platform_items, step02_items, step03_items,
                step04_items, endpoint_items, step06_items, monitoring_items, step07_items, step09_items)
    return [item for build in builders for item in build(cfg, prices)]


def totals(items: list[LineItem], hours_forgotten: float) -> Totals:
    counted = [item for item in items if item.in_total]
    hourly = sum(item.hourly for item in counted)
    return Totals(
        lab_run=sum(item.lab_run for item in counted),
        hourly=hourly,
        per_day=sum(item.per_day for item in counted),
        hours_forgotten=hours_forgotten,
        forgotten=hourly * hours_forgotten,
    )


def _usd(value: float) -> str:
    if value == 0:
        return "-"
    return "<0.0001" if value < 0.00005 else f"{value:.4f}"


def _hours(value: float) -> str:
    return f"{value:g}"


def render(cfg: Settings, prices: Prices, items: list[LineItem], total: Totals) -> str:
    header = ("Resource", "Where", "USD/hour", "Lab run", "Per day forgotten")
    counted = [item for item in items if item.in_total]
    variations = [item for item in items if not item.in_total]
    rows = [(i.resource, i.where, _usd(i.hourly), _usd(i.lab_run), _usd(i.per_day)) for i in counted]
    total_row = ("Total", "", _usd(total.hourly), _usd(total.lab_run), _usd(total.per_day))
    widths = [max(len(row[n]) for row in [header, total_row, *rows]) for n in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        left = [cell.ljust(width) for cell, width in zip(row[:2], widths)]
        right = [cell.rjust(width) for cell, width in zip(row[2:], widths[2:])]
        return "  ".join(left + right).rstrip()

    rule = "  ".join("-" * width for width in widths)
    serving = "serverless" if cfg.serverless else f"{cfg.endpoint_min_instances} x {cfg.endpoint_instance_type}"
    out = [
        f"FraudLab cost estimate for {prices.region}: on-demand list prices in USD, "
        f"retrieved {prices.retrieved} (labkit/prices.json)",
        f"settings: maxAzs={cfg.max_azs} interfaceEndpoints={str(cfg.interface_endpoints).lower()} "
        f"endpoint={serving} driftMonitor={cfg.drift_monitor} driftScheduleHours={cfg.drift_schedule_hours}",
        "",
        line(header),
        rule,
        *(line(row) for row in rows),
        rule,
        line(total_row),
        "",
        f"One full lab run: USD {total.lab_run:.2f}",
        f"Forgotten for {_hours(total.hours_forgotten)} h after the lab: USD {total.forgotten:.2f}"
        f" (USD {total.hourly:.3f}/hour, USD {total.per_day:.2f}/day)",
    ]
    if variations:
        out += ["", "Variations (not in the totals):"]
        out += [f"  {v.where}: {v.resource}: USD {v.lab_run:.4f} per run" for v in variations]
    out += [
        "",
        "Assumptions:",
        f"  - a lab run takes {_hours(LAB_HOURS)} h of wall time; the endpoint (and the drift monitoring deployed with it)",
        f"    is up about {_hours(ENDPOINT_HOURS)} h; then `cdk destroy --all` removes everything",
        "  - 'Per day forgotten' is what keeps billing when nothing is torn down after the lab; an idle",
        "    endpoint stays at its minimum instance count; scheduled jobs are spread per hour",
        "  - SageMaker jobs bill per second with start-up time: the minutes shown are billed time",
        "  - monthly fees (KMS keys, metrics, alarms) are prorated per hour over 730 h",
        "  - free tiers are not subtracted, except SNS email and EventBridge Scheduler",
        "    (the lab stays far inside them)",
        "  - not counted: data transfer out of AWS, CDK bootstrap bucket, CloudFormation (free), taxes",
    ]
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make cost",
                                     description="Estimate what the FraudLab stacks and lab steps cost.")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    parser.add_argument("--region", default=region, help="AWS region to price (default: $AWS_REGION, else us-east-1)")
    parser.add_argument("--hours-forgotten", type=float, default=24.0,
                        help="hours the stacks stay up after the lab if teardown is forgotten (default: 24)")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="override a cdk.json setting, as with cdk (e.g. -c fraudlab:serverless=true)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.hours_forgotten < 0:
            raise CostError(f"--hours-forgotten={args.hours_forgotten:g} must not be negative")
        prices = load_prices(args.region)
        cfg = load_settings(args.context)
        items = estimate(cfg, prices)
    except CostError as error:
        print(f"fraudlab: {error}", file=sys.stderr)
        return 2
    print(render(cfg, prices, items, totals(items, args.hours_forgotten)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
