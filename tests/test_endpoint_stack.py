"""The endpoint stack, synthesized with an approved package ARN: isolation, KMS, capture, scaling, alarms."""
from __future__ import annotations

import json

import pytest

from tests.helpers import PACKAGE_ARN, cfn_lint, endpoint_assembly


def synth_endpoint(**overrides: str) -> dict:
    outdir = endpoint_assembly(**overrides)
    return {"dir": outdir, **json.loads((outdir / "FraudLab-Endpoint.template.json").read_text())}


@pytest.fixture(scope="module")
def endpoint():
    return synth_endpoint()


@pytest.fixture(scope="module")
def serverless():
    return synth_endpoint(serverless="true")


def of_type(template: dict, resource_type: str) -> list[dict]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == resource_type]


def test_model_serves_the_package_in_the_vpc_with_network_isolation(endpoint):
    (model,) = of_type(endpoint, "AWS::SageMaker::Model")
    assert model["PrimaryContainer"] == {"ModelPackageName": PACKAGE_ARN}
    assert model["EnableNetworkIsolation"] is True
    assert len(model["VpcConfig"]["Subnets"]) == 2 and len(model["VpcConfig"]["SecurityGroupIds"]) == 1
    assert model["ExecutionRoleArn"] == {"Fn::ImportValue": "FraudLab-MLPlatform-ServingRoleArn"}


def test_endpoint_config_encrypts_and_captures_both_content_types(endpoint):
    (config,) = of_type(endpoint, "AWS::SageMaker::EndpointConfig")
    assert config["KmsKeyId"] == {"Fn::ImportValue": "FraudLab-Data-KeyArn"}
    (variant,) = config["ProductionVariants"]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == ("AllTraffic", "ml.m5.large", 1)
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True and capture["InitialSamplingPercentage"] == 100
    assert [o["CaptureMode"] for o in capture["CaptureOptions"]] == ["Input", "Output"]
    assert capture["CaptureContentTypeHeader"] == {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}
    assert "/capture" in json.dumps(capture["DestinationS3Uri"]) and capture["KmsKeyId"] == config["KmsKeyId"]


def test_target_tracking_autoscaling_on_invocations_per_instance(endpoint):
    (target,) = of_type(endpoint, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert "/variant/AllTraffic" in json.dumps(target["ResourceId"])
    (policy,) = of_type(endpoint, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert tracking["TargetValue"] == 600


def test_alarms_watch_server_errors_and_p99_latency(endpoint):
    alarms = {a["MetricName"]: a for a in of_type(endpoint, "AWS::CloudWatch::Alarm")}
    assert set(alarms) == {"Invocation5XXErrors", "ModelLatency"}
    assert alarms["Invocation5XXErrors"]["Threshold"] == 1
    assert alarms["ModelLatency"]["ExtendedStatistic"] == "p99"
    assert alarms["ModelLatency"]["Threshold"] == 100_000  # 100 ms in microseconds
    for alarm in alarms.values():
        assert {d["Name"] for d in alarm["Dimensions"]} == {"EndpointName", "VariantName"}


def test_adding_the_endpoint_leaves_the_other_stacks_unchanged(endpoint, assembly):
    for stack in ("Network", "Data", "MLPlatform"):
        before = json.loads((assembly / f"FraudLab-{stack}.template.json").read_text())
        after = json.loads((endpoint["dir"] / f"FraudLab-{stack}.template.json").read_text())
        assert before == after, stack


def test_serverless_variant_has_no_instances_volume_key_or_autoscaling(serverless):
    (config,) = of_type(serverless, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MaxConcurrency": 5, "MemorySizeInMB": 2048}
    assert "InstanceType" not in variant and "KmsKeyId" not in config
    assert not of_type(serverless, "AWS::ApplicationAutoScaling::ScalableTarget")
    # Serverless Inference refuses a model with VpcConfig or network isolation.
    (model,) = of_type(serverless, "AWS::SageMaker::Model")
    assert "VpcConfig" not in model and "EnableNetworkIsolation" not in model
    assert "DataCaptureConfig" not in config


@pytest.mark.parametrize("variant", ["endpoint", "serverless"])
def test_cfn_lint_is_clean_with_the_endpoint(variant, request):
    result = cfn_lint(sorted(request.getfixturevalue(variant)["dir"].glob("*.template.json")))
    assert result.returncode == 0, result.stdout
