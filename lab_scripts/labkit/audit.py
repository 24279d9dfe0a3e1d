"""What of the lab still exists, service by service: the teardown step's audit.

A resource is the lab's if it carries the project=fraudlab tag or, for the kinds that
cannot be tagged (alarms, Scheduler schedules, model packages, running jobs), if its name
says so. Resources owned by a stack that is still deployed are reported apart: `cdk
destroy` removes those; anything else is a leftover that keeps costing or cluttering.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import boto3
from botocore.exceptions import ClientError

from labkit.session import client

TAG = ("project", "fraudlab")
JOB_PREFIX = "fraudlab-"


@dataclass(frozen=True)
class Found:
    service: str
    kind: str
    name: str
    arn: str = ""


def _tagged(tags: Iterable[dict]) -> bool:
    return any(t.get("Key", t.get("TagKey")) == TAG[0] and t.get("Value", t.get("TagValue")) == TAG[1] for t in tags)


def _quiet(call: Callable, default):
    """A describe call on something deleted meanwhile (or not taggable) counts as nothing."""
    try:
        return call()
    except ClientError:
        return default


def sagemaker_resources(session: boto3.Session) -> list[Found]:
    sm = client(session, "sagemaker")
    found = []
    listings = (
        ("endpoint", lambda: sm.list_endpoints()["Endpoints"], "EndpointName", "EndpointArn"),
        ("endpoint config", lambda: sm.list_endpoint_configs()["EndpointConfigs"], "EndpointConfigName", "EndpointConfigArn"),
        ("model", lambda: sm.list_models()["Models"], "ModelName", "ModelArn"),
    )
    for kind, listing, name_key, arn_key in listings:
        for item in listing():
            if _tagged(_quiet(lambda: sm.list_tags(ResourceArn=item[arn_key])["Tags"], [])):
                found.append(Found("sagemaker", kind, item[name_key], item[arn_key]))
    for schedule in sm.list_monitoring_schedules()["MonitoringScheduleSummaries"]:
        found.append(Found("sagemaker", "monitoring schedule", schedule["MonitoringScheduleName"], schedule["MonitoringScheduleArn"]))
    for group in sm.list_model_package_groups()["ModelPackageGroupSummaryList"]:
        if _tagged(_quiet(lambda: sm.list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"], [])) or group["ModelPackageGroupName"].startswith(JOB_PREFIX):
            found.append(Found("sagemaker", "model package group", group["ModelPackageGroupName"], group["ModelPackageGroupArn"]))
            for package in sm.list_model_packages(ModelPackageGroupName=group["ModelPackageGroupName"])["ModelPackageSummaryList"]:
                found.append(Found("sagemaker", "model package", package["ModelPackageArn"].split("model-package/")[-1], package["ModelPackageArn"]))
    for kind, listing, name_key in (
        ("processing job", lambda: sm.list_processing_jobs(StatusEquals="InProgress")["ProcessingJobSummaries"], "ProcessingJobName"),
        ("training job", lambda: sm.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"], "TrainingJobName"),
        ("tuning job", lambda: sm.list_hyper_parameter_tuning_jobs(StatusEquals="InProgress")["HyperParameterTuningJobSummaries"], "HyperParameterTuningJobName"),
    ):
        for job in listing():
            if job[name_key].startswith(JOB_PREFIX):
                found.append(Found("sagemaker", f"running {kind}", job[name_key]))
    return found


def other_resources(session: boto3.Session, prefix: str) -> list[Found]:
    found = []
    s3 = client(session, "s3")
    for bucket in s3.list_buckets()["Buckets"]:
        # S3 lists every region's buckets: audit this region's (us-east-1 reports None).
        location = _quiet(lambda: s3.get_bucket_location(Bucket=bucket["Name"])["LocationConstraint"], "") or "us-east-1"
        if location != session.region_name:
            continue
        if _tagged(_quiet(lambda: s3.get_bucket_tagging(Bucket=bucket["Name"])["TagSet"], [])):
            found.append(Found("s3", "bucket", bucket["Name"]))
    kms = client(session, "kms")
    for key in kms.list_keys()["Keys"]:
        state = _quiet(lambda: kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"], "PendingDeletion")
        if state != "PendingDeletion" and _tagged(_quiet(lambda: kms.list_resource_tags(KeyId=key["KeyId"])["Tags"], [])):
            found.append(Found("kms", "key", key["KeyId"], key["KeyArn"]))
    firehose = client(session, "firehose")
    for name in firehose.list_delivery_streams()["DeliveryStreamNames"]:
        if _tagged(_quiet(lambda: firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)["Tags"], [])):
            found.append(Found("firehose", "delivery stream", name))
    sns = client(session, "sns")
    for topic in sns.list_topics()["Topics"]:
        name = topic["TopicArn"].rsplit(":", 1)[-1]
        if name.startswith(f"{prefix}-") or _tagged(_quiet(lambda: sns.list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"], [])):
            found.append(Found("sns", "topic", topic["TopicArn"].rsplit(":", 1)[-1], topic["TopicArn"]))
    for schedule in client(session, "scheduler").list_schedules()["Schedules"]:
        if schedule["Name"].startswith(f"{prefix}-"):  # Scheduler schedules take no tags
            found.append(Found("scheduler", "schedule", schedule["Name"], schedule["Arn"]))
    for alarm in client(session, "cloudwatch").describe_alarms(AlarmNamePrefix=f"{prefix}-")["MetricAlarms"]:
        found.append(Found("cloudwatch", "alarm", alarm["AlarmName"], alarm["AlarmArn"]))
    logs = client(session, "logs")
    for group in logs.describe_log_groups()["logGroups"]:
        arn = group["arn"].removesuffix(":*")
        if _tagged([{"Key": k, "Value": v} for k, v in _quiet(lambda: logs.list_tags_for_resource(resourceArn=arn)["tags"], {}).items()]):
            found.append(Found("logs", "log group", group["logGroupName"], arn))
    ec2 = client(session, "ec2")
    tag_filter = [{"Name": f"tag:{TAG[0]}", "Values": [TAG[1]]}]
    for vpc in ec2.describe_vpcs(Filters=tag_filter)["Vpcs"]:
        found.append(Found("ec2", "vpc", vpc["VpcId"]))
    for endpoint in ec2.describe_vpc_endpoints(Filters=tag_filter)["VpcEndpoints"]:
        if endpoint["State"].lower() not in ("deleted", "deleting"):
            found.append(Found("ec2", "vpc endpoint", endpoint["VpcEndpointId"]))
    iam = client(session, "iam")  # global: roles are told apart by the stack prefix in their names
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if role["RoleName"].startswith(f"{prefix}-") and _tagged(_quiet(lambda: iam.list_role_tags(RoleName=role["RoleName"])["Tags"], [])):
                found.append(Found("iam", "role", role["RoleName"], role["Arn"]))
    return found


def stack_owned(session: boto3.Session, stacks: list[str]) -> set[str]:
    """Physical IDs (names or ARNs) of every resource of the given deployed stacks."""
    cloudformation = client(session, "cloudformation")
    owned: set[str] = set()
    for stack in stacks:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
            owned.update(r["PhysicalResourceId"] for r in page["StackResourceSummaries"] if r.get("PhysicalResourceId"))
    return owned


def is_owned(item: Found, owned: set[str]) -> bool:
    return item.name in owned or item.arn in owned or any(item.arn.endswith(f"/{o}") or item.arn.endswith(f":{o}") for o in owned if o and item.arn)


def audit(session: boto3.Session, prefix: str, stacks: list[str]) -> tuple[list[Found], list[Found]]:
    """(owned by a deployed stack, leftovers) of everything the lab may have created."""
    owned = stack_owned(session, stacks)
    everything = sagemaker_resources(session) + other_resources(session, prefix)
    in_stacks = [f for f in everything if is_owned(f, owned)]
    return in_stacks, [f for f in everything if not is_owned(f, owned)]
