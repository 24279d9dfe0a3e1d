"""The pre-deploy cost estimate (`make cost`): totals, feature flags, regions, and the price data."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from labkit import cost

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def prices() -> cost.Prices:
    return cost.load_prices("us-east-1")


@pytest.fixture
def settings() -> cost.Settings:
    return cost.load_settings()


def _keys(items: list[cost.LineItem]) -> set[str]:
    return {item.key for item in items}


def test_totals_equal_the_sum_of_line_items(settings, prices):
    items = cost.estimate(settings, prices)
    counted = [item for item in items if item.in_total]
    total = cost.totals(items, hours_forgotten=36)

    assert total.lab_run == pytest.approx(sum(item.lab_run for item in counted))
    assert total.hourly == pytest.approx(sum(item.hourly for item in counted))
    assert total.per_day == pytest.approx(sum(item.hourly * 24 for item in counted))
    assert total.forgotten == pytest.approx(total.hourly * 36)
    # The --tune variation is shown but not counted.
    assert "training-tune" in _keys(items) and "training-tune" not in _keys(counted)


def test_defaults_price_one_real_time_instance_for_the_endpoint_hour(settings, prices):
    items = {item.key: item for item in cost.estimate(settings, prices)}

    endpoint = items["endpoint-instances"]
    assert endpoint.hourly == pytest.approx(0.115)  # 1 x ml.m5.large, us-east-1
    assert endpoint.lab_run == pytest.approx(0.115 * cost.ENDPOINT_HOURS)
    assert endpoint.per_day == pytest.approx(0.115 * 24)
    # The jobs end by themselves: they cost per run, nothing when forgotten.
    assert items["feature-job"].hourly == 0 and items["feature-job"].lab_run > 0


def test_interface_endpoints_add_exactly_six_per_az_hours(settings, prices):
    for azs in (2, 3):
        off = replace(settings, max_azs=azs, interface_endpoints=False)
        on = replace(off, interface_endpoints=True)
        added = cost.totals(cost.estimate(on, prices), 1).hourly - cost.totals(cost.estimate(off, prices), 1).hourly

        assert added == pytest.approx(6 * azs * prices.usd("vpc", "interface_endpoint_az_hour"))


def test_serverless_removes_the_hosting_instance_line(settings, prices):
    real_time = _keys(cost.estimate(replace(settings, serverless=False), prices))
    serverless_items = cost.estimate(replace(settings, serverless=True), prices)

    assert "endpoint-instances" in real_time
    assert "endpoint-instances" not in _keys(serverless_items)
    assert "serverless" in _keys(serverless_items)
    # Nothing serves, nothing bills: a forgotten serverless endpoint costs only its alarms.
    endpoint = [item for item in serverless_items if item.where.endswith("-Endpoint")]
    assert sum(item.hourly for item in endpoint) == pytest.approx(2 * 0.10 / 730)


def test_drift_monitor_off_removes_the_monitoring_lines(settings, prices):
    kit = cost.estimate(replace(settings, drift_monitor="kit"), prices)
    off = cost.estimate(replace(settings, drift_monitor="off"), prices)
    monitoring = {"monitoring-endpoint", "drift-schedule", "scheduler", "drift-metrics", "drift-alarm", "drift-step"}

    assert monitoring <= _keys(kit)
    assert not monitoring & _keys(off)
    assert not [item for item in off if item.where.endswith("-Monitoring") or item.where == "step 08"]


def test_model_monitor_runs_its_own_hourly_job_without_the_kit_endpoint(settings, prices):
    items = {item.key: item for item in cost.estimate(replace(settings, drift_monitor="modelMonitor"), prices)}

    assert "monitoring-endpoint" not in items and "drift-step" not in items
    assert items["drift-schedule"].hourly == pytest.approx(0.115 * 5 / 60)  # ml.m5.large, 5 billed minutes
    assert items["drift-metrics"].hourly == pytest.approx(cost.DRIFT_METRICS * 0.30 / 730)


def test_drift_schedule_hours_spreads_the_job_cost(settings, prices):
    hourly = {item.key: item for item in cost.estimate(replace(settings, drift_schedule_hours=1), prices)}
    six = {item.key: item for item in cost.estimate(replace(settings, drift_schedule_hours=6), prices)}

    assert six["drift-schedule"].hourly == pytest.approx(hourly["drift-schedule"].hourly / 6)


def test_firehose_bills_each_record_as_5_kb(settings, prices):
    items = {item.key: item for item in cost.estimate(settings, prices)}

    billed_gb = 20_000 * 5 * 1024 / 1024**3
    assert items["firehose"].lab_run == pytest.approx(billed_gb * prices.usd("firehose", "direct_put_gb"))


def test_context_overrides_win_over_cdk_json():
    cfg = cost.load_settings(["fraudlab:serverless=true", "maxAzs=3", "fraudlab:driftMonitor=off"])

    assert cfg.serverless is True and cfg.max_azs == 3 and cfg.drift_monitor == "off"
    # Keys cdk.json does not have (yet) take their documented defaults.
    defaults = cost.load_settings()
    assert defaults.drift_schedule_hours == 1 and defaults.drift_monitor in cost.DRIFT_MONITORS


def test_default_table_names_every_stack_and_the_totals(capsys):
    assert cost.main(["--region", "us-east-1", "--hours-forgotten", "48"]) == 0
    out = capsys.readouterr().out

    for where in ("FraudLab-Network", "FraudLab-Data", "FraudLab-MLPlatform", "FraudLab-Endpoint",
                  "FraudLab-Monitoring", "step 02", "step 03", "step 06", "step 08", "step 07"):
        assert where in out
    assert "Batch transform job 1 x ml.m5.large" in out  # step 06 scores a day in batch
    # step 07's pipeline: free itself, its three jobs billed
    assert "SageMaker Pipeline (no charge of its own" in out
    for job in ("Processing job 1 x ml.m5.xlarge, ~5 min (features)", "Training job 1 x ml.m5.large", "Processing job 1 x ml.m5.xlarge, ~4 min (evaluation)"):
        assert f"Pipeline: {job}" in out
    assert "Pipeline run started by the drift alarm" in out  # step 08's retraining
    assert "2 extra instance-hours of ml.m5.large (4 blue/green updates)" in out  # step 09
    assert "One full lab run: USD" in out and "Forgotten for 48 h after the lab: USD" in out
    assert "retrieved 2026-11-23" in out


def test_unknown_region_is_one_clear_line_and_exit_code_2(capsys):
    assert cost.main(["--region", "xx-nowhere-1"]) == 2
    captured = capsys.readouterr()

    assert captured.out == ""
    assert captured.err.strip() == (
        "fraudlab: no prices for region xx-nowhere-1 in prices.json: "
        "add them or choose one of eu-west-1, us-east-1, us-west-2"
    )


@pytest.mark.parametrize("override", ["fraudlab:maxAzs=three", "fraudlab:driftMonitor=sometimes",
                                      "fraudlab:endpointInstanceType=ml.c5.large", "oops"])
def test_bad_settings_are_one_line_and_exit_code_2(capsys, override):
    assert cost.main(["--region", "us-east-1", "-c", override]) == 2
    err = capsys.readouterr().err

    assert err.startswith("fraudlab: ") and err.count("\n") == 1 and "Traceback" not in err


def test_module_exits_2_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "labkit.cost", "--region", "xx-nowhere-1"],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT / "lab_scripts"), "PATH": ""},
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 2
    assert "no prices for region xx-nowhere-1" in result.stderr and "Traceback" not in result.stderr


def test_prices_json_names_its_date_and_source_and_every_price_is_complete():
    document = json.loads(cost.PRICES_JSON.read_text())

    assert document["retrieved"] == "2026-11-23"
    assert document["currency"] == "USD"
    assert "https://aws.amazon.com/sagemaker/pricing/" in document["source"]
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= set(document["regions"])
    for region, services in document["regions"].items():
        for service, entries in services.items():
            for item, price in entries.items():
                where = f"{region} {service} {item}"
                assert isinstance(price["usd"], (int, float)) and math.isfinite(price["usd"]) and price["usd"] >= 0, where
                assert price["unit"].strip() and price["source"].strip(), where


def test_every_region_prices_everything_the_estimate_uses(settings):
    variants = [
        settings,
        replace(settings, interface_endpoints=True, serverless=True, drift_monitor="modelMonitor"),
        replace(settings, endpoint_instance_type="ml.m5.xlarge"),
    ]
    for region in ("us-east-1", "us-west-2", "eu-west-1"):
        prices = cost.load_prices(region)
        for cfg in variants:
            assert cost.totals(cost.estimate(cfg, prices), 24).lab_run > 0
