"""Security and cost properties of the synthesized stacks (what a reviewer would check)."""
from __future__ import annotations

import json

import pytest

from stacks.layout import RAW_ERRORS_PREFIX, RAW_PREFIX


def resources(template: dict, resource_type: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def only(template: dict, resource_type: str) -> dict:
    found = list(resources(template, resource_type).values())
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]["Properties"]


def statements(policy: dict) -> list[dict]:
    return policy["Properties"]["PolicyDocument"]["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def text(value) -> str:
    """A resource expression flattened to text, for matching ARNs built with Fn::Join."""
    return json.dumps(value, sort_keys=True)


# --- network -------------------------------------------------------------------------


def test_vpc_is_isolated_in_two_azs_without_nat_or_internet(templates):
    network = templates["Network"]
    assert len(resources(network, "AWS::EC2::Subnet")) == 2
    for subnet in resources(network, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    for forbidden in ("AWS::EC2::NatGateway", "AWS::EC2::InternetGateway", "AWS::EC2::EIP"):
        assert not resources(network, forbidden), forbidden
    assert not resources(network, "AWS::EC2::Route"), "isolated subnets need no routes beyond the VPC"


def test_s3_gateway_endpoint_and_only_the_metrics_interface_endpoint_by_default(templates):
    """S3 through the free gateway; of the paid interface endpoints only CloudWatch's, which
    the drift job needs to publish its metrics (fraudlab:driftMonitor=kit, the default)."""
    endpoints = resources(templates["Network"], "AWS::EC2::VPCEndpoint").values()
    by_kind = {e["Properties"].get("VpcEndpointType", "Gateway"): text(e["Properties"]["ServiceName"]) for e in endpoints}
    assert len(endpoints) == 2
    assert "s3" in by_kind["Gateway"]
    assert ".monitoring" in by_kind["Interface"]


def test_sagemaker_security_group_admits_only_itself(templates):
    network = templates["Network"]
    group_id = next(k for k in resources(network, "AWS::EC2::SecurityGroup") if k.startswith("SageMakerSecurityGroup"))
    group = network["Resources"][group_id]["Properties"]
    assert "SecurityGroupIngress" not in group
    # Rules on the SageMaker group: only from itself (the endpoints' group admits it on 443).
    ingress = [r for r in resources(network, "AWS::EC2::SecurityGroupIngress").values() if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}]
    assert len(ingress) == 1
    assert ingress[0]["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}


def test_vpc_flow_logs_go_to_a_log_group_with_retention(templates):
    network = templates["Network"]
    flow_log = only(network, "AWS::EC2::FlowLog")
    assert flow_log["TrafficType"] == "ALL"
    assert only(network, "AWS::Logs::LogGroup")["RetentionInDays"] == 7


# --- data and ingest -----------------------------------------------------------------


def test_kms_key_rotates_and_is_destroyable(templates):
    key = resources(templates["Data"], "AWS::KMS::Key")
    (logical_id, resource), = key.items()
    assert resource["Properties"]["EnableKeyRotation"] is True
    assert resource["DeletionPolicy"] == "Delete"


def lab_bucket(templates) -> tuple[str, dict]:
    buckets = resources(templates["Data"], "AWS::S3::Bucket")
    return next((k, v["Properties"]) for k, v in buckets.items() if k.startswith("LabBucket"))


def test_lab_bucket_is_kms_encrypted_private_and_access_logged(templates):
    _, bucket = lab_bucket(templates)
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert "LabKey" in text(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "AccessLogBucket" in text(bucket["LoggingConfiguration"]["DestinationBucketName"])


def test_every_bucket_denies_requests_without_tls(templates):
    policies = resources(templates["Data"], "AWS::S3::BucketPolicy").values()
    assert len(policies) == 2
    for policy in policies:
        deny_plain_http = [
            s
            for s in statements(policy)
            if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny_plain_http and deny_plain_http[0]["Action"] == "s3:*"


def test_buckets_are_emptied_and_deleted_with_the_stack(templates):
    data = templates["Data"]
    for logical_id, bucket in resources(data, "AWS::S3::Bucket").items():
        assert bucket["DeletionPolicy"] == "Delete"
        assert any(logical_id in text(r["Properties"]) for r in resources(data, "Custom::S3AutoDeleteObjects").values())


def test_firehose_is_direct_put_gzip_encrypted_partitioned_and_logged(templates):
    stream = only(templates["Data"], "AWS::KinesisFirehose::DeliveryStream")
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert stream["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "CUSTOMER_MANAGED_CMK"
    s3 = stream["ExtendedS3DestinationConfiguration"]
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["Prefix"] == RAW_PREFIX
    assert s3["ErrorOutputPrefix"] == RAW_ERRORS_PREFIX
    assert s3["BufferingHints"] == {"SizeInMBs": 5, "IntervalInSeconds": 60}
    assert s3["CloudWatchLoggingOptions"]["Enabled"] is True
    assert "LabKey" in text(s3["EncryptionConfiguration"])


def test_firehose_role_writes_only_its_prefixes_with_only_the_lab_key(templates):
    data = templates["Data"]
    (policy,) = [p for k, p in resources(data, "AWS::IAM::Policy").items() if k.startswith("FirehoseDeliveryPolicy")]
    for statement in statements(policy):
        for resource in as_list(statement["Resource"]):
            assert resource != "*"
        if "s3:PutObject" in as_list(statement["Action"]):
            targets = sorted(text(r) for r in as_list(statement["Resource"]))
            assert len(targets) == 2
            assert any(f"/{RAW_PREFIX}*" in t for t in targets)
            assert any(f"/{RAW_ERRORS_PREFIX}*" in t for t in targets)
        if any(a.startswith("kms:") for a in as_list(statement["Action"])):
            assert "LabKey" in text(statement["Resource"])
            assert "kms:ViaService" in text(statement["Condition"])


# --- ML platform ---------------------------------------------------------------------


def test_sagemaker_role_has_no_wildcard_action_on_wildcard_resource(templates):
    for name, template in templates.items():
        for policy in resources(template, "AWS::IAM::Policy").values():
            for statement in statements(policy):
                actions = as_list(statement["Action"])
                assert not ("*" in as_list(statement["Resource"]) and any(a == "*" or a.endswith(":*") for a in actions)), (
                    name,
                    statement,
                )


def role_policies(ml: dict) -> dict[str, dict]:
    """Execution role name (Processing, Training, Serving, Monitoring) -> its inline policy."""
    return {
        logical_id.rstrip("0123456789ABCDEF").removesuffix("Policy"): policy
        for logical_id, policy in resources(ml, "AWS::IAM::Policy").items()
    }


def object_prefixes(policy: dict, action: str) -> set[str]:
    """The lab-bucket prefixes `action` is allowed on (from ".../<prefix>*")."""
    found = set()
    for statement in statements(policy):
        if action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                assert "LabBucketArn" in text(resource) and not text(resource).endswith('"/*"]]}'), "whole-bucket access"
                found.add(resource["Fn::Join"][1][-1].lstrip("/").removesuffix("*"))
    return found


def test_each_kind_of_job_has_its_own_role_reaching_only_its_own_prefixes(templates):
    """Regression: one role served every job, so the endpoint could read raw payments and labels."""
    policies = role_policies(templates["MLPlatform"])
    pipeline = policies.pop("Pipeline")  # not a job's role: it starts the jobs (test_pipeline_definition.py)
    assert (object_prefixes(pipeline, "s3:GetObject"), object_prefixes(pipeline, "s3:PutObject")) == ({"features/pipeline-", "evaluation/pipeline-"}, set())
    reach = {role: (object_prefixes(p, "s3:GetObject"), object_prefixes(p, "s3:PutObject")) for role, p in policies.items()}
    assert reach == {
        "Processing": ({RAW_PREFIX, "labels/", "code/"}, {"features/", "quarantine/"}),
        "Training": ({"features/", "models/checkpoints/"}, {"models/"}),
        "Evaluation": ({"code/", "features/", "models/"}, {"evaluation/", "models/pipeline-"}),
        "Serving": ({"models/", "batch/input/"}, {"capture/", "batch/output/"}),
        "Monitoring": ({"code/", "features/", "capture/", "monitoring/"}, {"monitoring/"}),
    }
    for role, policy in policies.items():
        listing = next(s for s in statements(policy) if s["Sid"] == "ListOwnPrefixes")
        assert set(listing["Condition"]["StringLike"]["s3:prefix"]) == {f"{p}*" for p in set().union(*reach[role])}
        for statement in statements(policy):
            if "*" in as_list(statement["Resource"]):
                assert statement["Sid"] in {"EcrLogin", "DescribeVpcPlacement", "PublishLabMetrics"}
        publish = next(s for s in statements(policy) if s["Sid"] == "PublishLabMetrics")
        # what SageMaker publishes with the role, and the kit's drift metrics for the monitor only
        expected = ["/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/Endpoints"]
        assert publish["Condition"] == {"StringEquals": {"cloudwatch:namespace": expected + (["FraudLab"] if role == "Monitoring" else [])}}


def test_only_the_serving_role_reads_the_endpoint_stacks_alarms_to_roll_an_update_back(templates):
    """Review finding (issue 28): SageMaker reads an update's AutoRollbackConfiguration alarms
    with the endpoint's execution role, and the serving role could only PutMetricData, so on
    AWS step 09's canary is refused or never rolls back. Only the endpoint stack's alarms."""
    for role, policy in role_policies(templates["MLPlatform"]).items():
        reads = [s for s in statements(policy) if "cloudwatch:DescribeAlarms" in as_list(s["Action"])]
        if role != "Serving":
            assert reads == [], role
            continue
        (statement,) = reads
        assert as_list(statement["Action"]) == ["cloudwatch:DescribeAlarms"]
        (resource,) = as_list(statement["Resource"])
        assert text(resource).endswith(':alarm:FraudLab-Endpoint-*"]]}'), resource


def test_execution_roles_are_assumable_only_by_sagemaker_in_this_account(templates):
    roles = resources(templates["MLPlatform"], "AWS::IAM::Role")
    assert len(roles) == 6  # processing, training, evaluation, serving, monitoring, and the pipeline's
    for role in roles.values():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_model_package_group_and_discoverable_outputs(templates):
    assert only(templates["MLPlatform"], "AWS::SageMaker::ModelPackageGroup")["ModelPackageGroupName"] == "fraudlab-fraud-detector"
    expected = {
        "Network": {"VpcId", "SubnetIds", "SecurityGroupId"},
        "Data": {"LabBucketName", "LabBucketArn", "KeyArn", "DeliveryStreamName", "RawPrefix"},
        "MLPlatform": {"ProcessingRoleArn", "TrainingRoleArn", "EvaluationRoleArn", "ServingRoleArn", "MonitoringRoleArn", "ModelPackageGroupName",
                       "ModelPackageGroupArn", "PipelineName", "PipelineArn"},
    }
    for stack, keys in expected.items():
        assert keys <= set(templates[stack]["Outputs"]), stack


# --- every stack ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["Network", "Data", "MLPlatform"])
def test_nothing_is_retained_after_cdk_destroy(templates, stack):
    for logical_id, resource in templates[stack]["Resources"].items():
        assert resource.get("DeletionPolicy", "Delete") == "Delete", logical_id
        assert resource.get("UpdateReplacePolicy", "Delete") == "Delete", logical_id


@pytest.mark.parametrize("stack", ["Network", "Data", "MLPlatform"])
def test_every_taggable_resource_carries_the_project_tag(templates, stack):
    for logical_id, resource in templates[stack]["Resources"].items():
        tags = resource.get("Properties", {}).get("Tags")
        if tags is None:
            continue
        if isinstance(tags, dict):  # SSM-style maps
            assert tags.get("project") == "fraudlab", logical_id
        else:
            assert {"Key": "project", "Value": "fraudlab"} in tags, logical_id


def test_stack_level_tags_reach_every_resource(assembly):
    manifest = json.loads((assembly / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert len(stacks) == 3
    for artifact in stacks:
        assert artifact["properties"]["tags"] == {"project": "fraudlab"}


def test_the_xgboost_image_map_covers_every_region_the_image_is_published_in(templates):
    """XGBoost 3.2-0 exists in regions Model Monitor does not (ap-south-2, ca-west-1, ...):
    the ML platform stack must deploy there (FindInMap fails on a missing region)."""
    from sagemaker.core import image_uris

    mapping = templates["MLPlatform"]["Mappings"]["XgboostImage"]
    monitor_regions = set(image_uris.config_for_framework("model-monitor")["versions"][""]["registries"])
    assert {"ap-south-2", "ap-southeast-4", "ca-west-1"} <= set(mapping) and set(mapping) > monitor_regions
    assert mapping["ca-west-1"]["uri"].endswith("/sagemaker-xgboost:3.2-0")


def test_every_log_group_is_encrypted_with_the_lab_key(templates):
    """Regression: the Firehose and flow-log groups had no customer key, though the README
    says KMS everywhere. The key lets CloudWatch Logs use it for this lab's groups only."""
    groups = {(stack, logical_id): r["Properties"] for stack, t in templates.items() for logical_id, r in t["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert len(groups) >= 2
    for (stack, logical_id), group in groups.items():
        key = text(group.get("KmsKeyId"))
        assert ("LabKey" in key) if stack == "Data" else ("FraudLab-Data-KeyArn" in key), (stack, logical_id, key)
    (key,) = resources(templates["Data"], "AWS::KMS::Key").values()
    logs = next(s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsForLabLogGroups")
    assert "log-group:FraudLab-*" in text(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
