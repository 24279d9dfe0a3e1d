"""What of the lab still exists, service by service: the teardown step's audit.

A resource is the lab's if it carries the project=fraudlab tag or, for the kinds that
cannot be tagged (alarms, Scheduler schedules, model packages, running jobs), if its name
says so; monitoring schedules and IAM roles need both, since the teardown deletes the
former and the latter are global (a role counts in the region its stack tagged it with).
Everything is listed in this region only, page by page. Resources owned by a stack that is
still deployed are reported apart: `cdk destroy` removes those; anything else is a
leftover that keeps costing or cluttering.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import boto3
from botocore.exceptions import ClientError

from labkit.session import client, each

TAG = ("project", "fraudlab")
REGION_TAG = "fraudlab:region"  # on IAM roles, which are global (see stacks/lab.py)
JOB_PREFIX = "fraudlab-"


@dataclass(frozen=True)
class Found:
    service: str
    kind: str
    name: str
    arn: str = ""


def _tag_value(tags: Iterable[dict], key: str) -> str | None:
    return next((t.get("Value", t.get("TagValue")) for t in tags if t.get("Key", t.get("TagKey")) == key), None)


def _tagged(tags: Iterable[dict]) -> bool:
    return _tag_value(tags, TAG[0]) == TAG[1]


def delivery_stream_names(firehose) -> list[str]:
    """Firehose has no paginator: it pages by the last name seen."""
    names: list[str] = []
    while True:
        page = firehose.list_delivery_streams(**({"ExclusiveStartDeliveryStreamName": names[-1]} if names else {}))
        names += page["DeliveryStreamNames"]
        if not page.get("HasMoreDeliveryStreams") or not page["DeliveryStreamNames"]:
            return names


def _quiet(call: Callable, default):
    """A describe call on something deleted meanwhile (or not taggable) counts as nothing."""
    try:
        return call()
    except ClientError:
        return default


def sagemaker_resources(session: boto3.Session, prefix: str) -> list[Found]:
    sm = client(session, "sagemaker")
    tags_of = lambda arn: _quiet(lambda: sm.list_tags(ResourceArn=arn)["Tags"], [])  # noqa: E731
    found = []
    for kind, operation, key, name_key, arn_key in (
        ("endpoint", "list_endpoints", "Endpoints", "EndpointName", "EndpointArn"),
        ("endpoint config", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn"),
        ("model", "list_models", "Models", "ModelName", "ModelArn"),
    ):
        for item in each(sm, operation, key):
            if _tagged(tags_of(item[arn_key])):
                found.append(Found("sagemaker", kind, item[name_key], item[arn_key]))
    for schedule in each(sm, "list_monitoring_schedules", "MonitoringScheduleSummaries"):
        # Another team's schedule in the same region is not the lab's: name and tag must both say so.
        if schedule["MonitoringScheduleName"].startswith(f"{prefix}-") and _tagged(tags_of(schedule["MonitoringScheduleArn"])):
            found.append(Found("sagemaker", "monitoring schedule", schedule["MonitoringScheduleName"], schedule["MonitoringScheduleArn"]))
    for group in each(sm, "list_model_package_groups", "ModelPackageGroupSummaryList"):
        if _tagged(tags_of(group["ModelPackageGroupArn"])) or group["ModelPackageGroupName"].startswith(JOB_PREFIX):
            found.append(Found("sagemaker", "model package group", group["ModelPackageGroupName"], group["ModelPackageGroupArn"]))
            for package in each(sm, "list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=group["ModelPackageGroupName"]):
                found.append(Found("sagemaker", "model package", package["ModelPackageArn"].split("model-package/")[-1], package["ModelPackageArn"]))
    for kind, operation, key, name_key in (
        ("processing job", "list_processing_jobs", "ProcessingJobSummaries", "ProcessingJobName"),
        ("training job", "list_training_jobs", "TrainingJobSummaries", "TrainingJobName"),
        ("tuning job", "list_hyper_parameter_tuning_jobs", "HyperParameterTuningJobSummaries", "HyperParameterTuningJobName"),
    ):
        for job in each(sm, operation, key, StatusEquals="InProgress"):
            if job[name_key].startswith(JOB_PREFIX):
                found.append(Found("sagemaker", f"running {kind}", job[name_key]))
    return found


def role_region(tags: list[dict]) -> str | None:
    return _tag_value(tags, REGION_TAG)


def other_resources(session: boto3.Session, prefix: str) -> list[Found]:
    found = []
    s3 = client(session, "s3")
    for bucket in each(s3, "list_buckets", "Buckets"):
        # S3 lists every region's buckets: audit this region's (us-east-1 reports None).
        location = _quiet(lambda: s3.get_bucket_location(Bucket=bucket["Name"])["LocationConstraint"], "") or "us-east-1"
        if location != session.region_name:
            continue
        if _tagged(_quiet(lambda: s3.get_bucket_tagging(Bucket=bucket["Name"])["TagSet"], [])):
            found.append(Found("s3", "bucket", bucket["Name"]))
    kms = client(session, "kms")
    for key in each(kms, "list_keys", "Keys"):
        state = _quiet(lambda: kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"], "PendingDeletion")
        if state != "PendingDeletion" and _tagged(_quiet(lambda: kms.list_resource_tags(KeyId=key["KeyId"])["Tags"], [])):
            found.append(Found("kms", "key", key["KeyId"], key["KeyArn"]))
    firehose = client(session, "firehose")
    for name in delivery_stream_names(firehose):
        if _tagged(_quiet(lambda: firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)["Tags"], [])):
            found.append(Found("firehose", "delivery stream", name))
    sns = client(session, "sns")
    for topic in each(sns, "list_topics", "Topics"):
        name = topic["TopicArn"].rsplit(":", 1)[-1]
        if name.startswith(f"{prefix}-") or _tagged(_quiet(lambda: sns.list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"], [])):
            found.append(Found("sns", "topic", topic["TopicArn"].rsplit(":", 1)[-1], topic["TopicArn"]))
    for schedule in each(client(session, "scheduler"), "list_schedules", "Schedules"):
        if schedule["Name"].startswith(f"{prefix}-"):  # Scheduler schedules take no tags
            found.append(Found("scheduler", "schedule", schedule["Name"], schedule["Arn"]))
    for alarm in each(client(session, "cloudwatch"), "describe_alarms", "MetricAlarms", AlarmNamePrefix=f"{prefix}-"):
        found.append(Found("cloudwatch", "alarm", alarm["AlarmName"], alarm["AlarmArn"]))
    logs = client(session, "logs")
    for group in each(logs, "describe_log_groups", "logGroups"):
        arn = group["arn"].removesuffix(":*")
        if _tagged([{"Key": k, "Value": v} for k, v in _quiet(lambda: logs.list_tags_for_resource(resourceArn=arn)["tags"], {}).items()]):
            found.append(Found("logs", "log group", group["logGroupName"], arn))
    ec2 = client(session, "ec2")
    tag_filter = [{"Name": f"tag:{TAG[0]}", "Values": [TAG[1]]}]
    for vpc in each(ec2, "describe_vpcs", "Vpcs", Filters=tag_filter):
        found.append(Found("ec2", "vpc", vpc["VpcId"]))
    for endpoint in each(ec2, "describe_vpc_endpoints", "VpcEndpoints", Filters=tag_filter):
        if endpoint["State"].lower() not in ("deleted", "deleting"):
            found.append(Found("ec2", "vpc endpoint", endpoint["VpcEndpointId"]))
    iam = client(session, "iam")  # global: the stack prefix names a lab's roles, the region tag says which lab
    for role in each(iam, "list_roles", "Roles"):
        if not role["RoleName"].startswith(f"{prefix}-"):
            continue
        tags = _quiet(lambda: iam.list_role_tags(RoleName=role["RoleName"])["Tags"], [])
        if _tagged(tags) and role_region(tags) in (session.region_name, None):  # untagged: a lab from before the tag
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
    everything = sagemaker_resources(session, prefix) + other_resources(session, prefix)
    in_stacks = [f for f in everything if is_owned(f, owned)]
    return in_stacks, [f for f in everything if not is_owned(f, owned)]
