"""The synthesized stacks, materialized in the local AWS: every resource accounted for."""
from __future__ import annotations

import json

import pytest

from localaws.cloudformation.resources import NOT_EMULATED
from localaws.cloudformation.deploy import DeployError, without_not_emulated


def test_every_template_resource_is_materialized_or_explicitly_not_emulated(templates, local_aws):
    _, reports = local_aws
    by_name = {report.name.split("-", 1)[1]: report for report in reports}
    assert set(by_name) == set(templates)
    for stack, template in templates.items():
        report = by_name[stack]
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] in NOT_EMULATED:
                assert report.not_emulated[logical_id] == resource["Type"]
            else:
                assert report.created.get(logical_id) == resource["Type"], f"{stack}/{logical_id} {resource['Type']}"


def test_not_emulated_types_are_only_custom_resources_with_reasons():
    for resource_type, reason in NOT_EMULATED.items():
        assert resource_type.startswith("Custom::")
        assert len(reason) > 60


def test_types_moto_skips_exist_in_their_services(local_aws, outputs):
    server, _ = local_aws
    session = server.session()
    stream = session.client("firehose").describe_delivery_stream(DeliveryStreamName=outputs["DeliveryStreamName"])
    destination = stream["DeliveryStreamDescription"]["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert destination["CompressionFormat"] == "GZIP"
    assert destination["BucketARN"] == outputs["LabBucketArn"]

    policy = json.loads(session.client("s3").get_bucket_policy(Bucket=outputs["LabBucketName"])["Policy"])
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in policy["Statement"])

    log_group = destination["CloudWatchLoggingOptions"]["LogGroupName"]
    streams = session.client("logs").describe_log_streams(logGroupName=log_group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["S3Delivery"]

    group = session.client("sagemaker").describe_model_package_group(ModelPackageGroupName=outputs["ModelPackageGroupName"])
    assert group["ModelPackageGroupArn"] == outputs["ModelPackageGroupArn"]


def test_key_tags_survive_materialization(local_aws, outputs):
    server, _ = local_aws
    tags = server.session().client("kms").list_resource_tags(KeyId=outputs["KeyArn"])["Tags"]
    assert {"TagKey": "project", "TagValue": "fraudlab"} in tags


def test_cross_stack_exports_resolve(local_aws, outputs):
    server, _ = local_aws
    exports = {e["Name"]: e["Value"] for e in server.session().client("cloudformation").list_exports()["Exports"]}
    assert exports["FraudLab-Data-LabBucketArn"] == outputs["LabBucketArn"]


def test_plain_http_is_not_denied_by_the_tls_only_policy_offline(local_aws, outputs):
    """moto would apply the conditional Deny unconditionally; the local AWS must not."""
    server, _ = local_aws
    s3 = server.session().client("s3")
    s3.put_object(Bucket=outputs["LabBucketName"], Key="labels/probe.txt", Body=b"ok")
    assert s3.get_object(Bucket=outputs["LabBucketName"], Key="labels/probe.txt")["Body"].read() == b"ok"
    s3.delete_object(Bucket=outputs["LabBucketName"], Key="labels/probe.txt")


def test_a_resource_that_needs_a_not_emulated_one_is_refused():
    template = {
        "Resources": {
            "Cleaner": {"Type": "Custom::S3AutoDeleteObjects", "Properties": {}},
            "Reader": {"Type": "AWS::SSM::Parameter", "Properties": {"Value": {"Fn::GetAtt": ["Cleaner", "Out"]}}},
        }
    }
    with pytest.raises(DeployError, match="Reader uses \\['Cleaner'\\]"):
        without_not_emulated(template)


def test_depends_on_a_not_emulated_resource_is_dropped():
    template = {
        "Resources": {
            "Cleaner": {"Type": "Custom::S3AutoDeleteObjects", "Properties": {}},
            "Bucket": {"Type": "AWS::S3::Bucket", "DependsOn": ["Cleaner"]},
        }
    }
    kept, skipped = without_not_emulated(template)
    assert skipped == {"Cleaner": "Custom::S3AutoDeleteObjects"}
    assert kept["Resources"] == {"Bucket": {"Type": "AWS::S3::Bucket"}}


def test_moto_fixes_new_alarms_start_without_data_and_groups_delete_as_on_aws(local_aws):
    server, _ = local_aws
    session = server.session("sa-east-1")  # a region no other test uses
    cloudwatch, sagemaker = session.client("cloudwatch"), session.client("sagemaker")
    cloudwatch.put_metric_alarm(
        AlarmName="fresh", Namespace="FraudLab", MetricName="m", Statistic="Maximum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="ignore",
    )
    assert cloudwatch.describe_alarms(AlarmNames=["fresh"])["MetricAlarms"][0]["StateValue"] == "INSUFFICIENT_DATA"

    sagemaker.create_model_package_group(ModelPackageGroupName="doomed")
    package = sagemaker.create_model_package(
        ModelPackageGroupName="doomed",
        InferenceSpecification={"Containers": [{"Image": "img"}], "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    with pytest.raises(sagemaker.exceptions.ClientError, match="still has model packages"):
        sagemaker.delete_model_package_group(ModelPackageGroupName="doomed")
    sagemaker.delete_model_package(ModelPackageName=package)
    sagemaker.delete_model_package_group(ModelPackageGroupName="doomed")
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_the_deploy_line_names_what_is_not_emulated_and_where_it_says_why(local_aws):
    """Regression: `make lab` printed "1 not emulated" and never said what or why."""
    _, reports = local_aws
    data = next(r for r in reports if r.name.endswith("-Data"))
    line = data.summary()
    assert line.startswith(f"✓ {data.name}: {len(data.created)} resources; not emulated: Custom::S3AutoDeleteObjects")
    assert "localaws/cloudformation/resources.py" in line
