"""The monitoring stack, both ways: the kit's scheduled drift job and the Model Monitor flag."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.validate import ParamValidator
import botocore.session

from localaws.cloudformation.deploy import deploy_assembly
from localaws.sagemaker.monitoring import MODEL_MONITOR_SCHEDULE, MonitoringApiError, MonitoringStore
from localaws.server import LocalAws
from stacks.monitoring_stack import model_monitor_schedule
from tests.helpers import cfn_lint, endpoint_assembly
from tests.test_compliance import lab_acknowledgements


@pytest.fixture(scope="module")
def kit() -> Path:
    return endpoint_assembly()


@pytest.fixture(scope="module")
def model_monitor() -> Path:
    return endpoint_assembly(driftMonitor="modelMonitor", driftScheduleHours="6")


def template(outdir: Path, stack: str) -> dict:
    return json.loads((outdir / f"FraudLab-{stack}.template.json").read_text())


def of_type(doc: dict, resource_type: str) -> list[dict]:
    return [r["Properties"] for r in doc["Resources"].values() if r["Type"] == resource_type]


def resolved(value) -> str:
    """A template string with its intrinsic functions replaced by a plausible value."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(resolved(part) for part in value["Fn::Join"][1])
    if "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${AWS::AccountId}", "123456789012").replace("${AWS::Region}", "us-east-1")
    if "Fn::FindInMap" in value:
        return "123456789012.dkr.ecr.us-east-1.amazonaws.com/image:tag"
    if "Ref" in value and value["Ref"] == "AWS::Region":
        return "us-east-1"
    if "Fn::ImportValue" in value and value["Fn::ImportValue"].endswith("RoleArn"):
        return "arn:aws:iam::123456789012:role/FraudLab-SageMakerExecutionRole"
    return "resolved-value"


def test_schedule_starts_a_valid_processing_job_request(kit):
    outdir = kit
    (schedule,) = of_type(template(outdir, "Monitoring"), "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
    request = json.loads(resolved(schedule["Target"]["Input"]))
    # The request the schedule sends must be one SageMaker accepts: botocore's own shape.
    operation = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateProcessingJob")
    report = ParamValidator().validate(request, operation.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert request["ProcessingJobName"] == "fraudlab-drift-<aws.scheduler.execution-id>"
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--window-end") + 1] == "<aws.scheduler.scheduled-time>"
    assert "--window-start" not in arguments and float(arguments[arguments.index("--settle-minutes") + 1]) >= 5  # see scheduled_window
    assert request["NetworkConfig"]["VpcConfig"]["Subnets"] and request["ProcessingOutputConfig"]["KmsKeyId"]
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]


def test_drift_alarm_watches_violations_and_notifies_the_encrypted_topic(kit):
    outdir = kit
    (alarm,) = of_type(template(outdir, "Monitoring"), "AWS::CloudWatch::Alarm")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == ("FraudLab", "constraint_violations", 1)
    assert alarm["TreatMissingData"] == "ignore" and alarm["AlarmActions"] and alarm["OKActions"]
    (topic,) = of_type(template(outdir, "MLPlatform"), "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic
    for endpoint_alarm in of_type(template(outdir, "Endpoint"), "AWS::CloudWatch::Alarm"):
        assert endpoint_alarm["AlarmActions"]


def test_the_drift_job_can_publish_metrics_from_the_isolated_vpc(kit, model_monitor):
    services = lambda outdir: {json.dumps(e["ServiceName"]) for e in of_type(template(outdir, "Network"), "AWS::EC2::VPCEndpoint")}  # noqa: E731
    assert any("monitoring" in s for s in services(kit))
    assert not any("monitoring" in s for s in services(model_monitor))


def test_model_monitor_flag_defines_a_data_quality_schedule_on_the_same_baseline(model_monitor):
    outdir = model_monitor
    doc = template(outdir, "Monitoring")
    (definition,) = of_type(doc, "AWS::SageMaker::DataQualityJobDefinition")
    (schedule,) = of_type(doc, "AWS::SageMaker::MonitoringSchedule")
    assert not of_type(doc, "AWS::Scheduler::Schedule")
    images = {region: value["uri"] for region, value in doc["Mappings"]["ModelMonitorImage"].items()}
    assert images["us-east-1"].endswith("/sagemaker-model-monitor-analyzer") and len(images) > 20
    baseline = json.dumps(definition["DataQualityBaselineConfig"])
    assert "monitoring/baseline/model-monitor/constraints.json" in baseline and "statistics.json" in baseline
    assert definition["NetworkConfig"]["VpcConfig"]["Subnets"] and definition["DataQualityJobOutputConfig"]["KmsKeyId"]
    assert definition["JobResources"]["ClusterConfig"]["VolumeKmsKeyId"]
    assert schedule["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == "cron(0 0/6 ? * * *)"
    assert schedule["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"] == definition["JobDefinitionName"]


def test_off_and_serverless_have_no_monitoring_stack():
    for name, overrides in (("off", {"driftMonitor": "off"}), ("serverless", {"serverless": "true"})):
        assert not (endpoint_assembly(**overrides) / "FraudLab-Monitoring.template.json").exists(), name


@pytest.mark.parametrize("variant", ["kit", "model_monitor"])
def test_cfn_lint_and_cdk_nag_pass_with_either_monitor(variant, request):
    outdir = request.getfixturevalue(variant)
    result = cfn_lint(sorted(outdir.glob("*.template.json")))
    assert result.returncode == 0, result.stdout
    report = json.loads((outdir / "validation-report.json").read_text())
    assert not any(plugin.get("violations") for plugin in report["pluginReports"])
    monitoring = {p: r for p, r in lab_acknowledgements(outdir).items() if p.startswith("FraudLab-Monitoring/")}
    expected = {
        "kit": {"FraudLab-Monitoring/SchedulerPolicy": {"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:processing-job/fraudlab-drift-*]"}},
        "model_monitor": {"FraudLab-Monitoring/PublishModelMonitorMetrics": {"AwsSolutions-IAM5[Resource::*]"}},
    }[variant]
    assert {p: set(r) for p, r in monitoring.items()} == expected


def test_model_monitor_path_deploys_offline_and_its_api_answers(model_monitor):
    """moto lacks monitoring schedules: the local AWS answers them (localaws/sagemaker/monitoring.py),
    validating each request against botocore's shapes, and CloudFormation creates them through it."""
    outdir = model_monitor
    with LocalAws(region="eu-west-3") as server:
        reports = deploy_assembly(outdir, server.session())
        assert {r.name for r in reports} >= {"FraudLab-Monitoring"}
        sagemaker = server.session().client("sagemaker")
        (summary,) = sagemaker.list_monitoring_schedules()["MonitoringScheduleSummaries"]
        assert summary["MonitoringScheduleName"] == "FraudLab-DriftMonitor" and summary["MonitoringScheduleStatus"] == "Scheduled"
        described = sagemaker.describe_data_quality_job_definition(JobDefinitionName="fraudlab-data-quality")
        assert described["DataQualityAppSpecification"]["ImageUri"].endswith("sagemaker-model-monitor-analyzer")
        sagemaker.stop_monitoring_schedule(MonitoringScheduleName="FraudLab-DriftMonitor")
        assert sagemaker.describe_monitoring_schedule(MonitoringScheduleName="FraudLab-DriftMonitor")["MonitoringScheduleStatus"] == "Stopped"
        with pytest.raises(sagemaker.exceptions.ClientError, match="ResourceNotFound"):
            sagemaker.describe_monitoring_schedule(MonitoringScheduleName="nope")
        with pytest.raises(sagemaker.exceptions.ClientError, match="ValidationException"):
            sagemaker.delete_data_quality_job_definition(JobDefinitionName="fraudlab-data-quality")  # still used by the schedule


@pytest.mark.parametrize("hours", range(1, 25))
def test_every_drift_schedule_is_one_model_monitor_accepts(hours):
    assert MODEL_MONITOR_SCHEDULE.fullmatch(model_monitor_schedule(hours))


def test_the_local_model_monitor_api_refuses_what_model_monitor_refuses():
    request = {"MonitoringScheduleName": "every-six", "MonitoringScheduleConfig": {"ScheduleConfig": {"ScheduleExpression": "cron(0 */6 ? * * *)"}}}
    with pytest.raises(MonitoringApiError, match="not supported"):
        MonitoringStore().handle("CreateMonitoringSchedule", request, "123456789012", "us-east-1")
