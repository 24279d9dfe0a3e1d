"""`cdk destroy --all`, offline: delete the lab's stacks newest first, as the CLI does.

What the stacks' custom resources would do on AWS is done here, since the local AWS runs
no Lambda: buckets marked for auto-deletion are emptied first (Custom::S3AutoDeleteObjects).
"""
from __future__ import annotations

import re
import time

import boto3
from botocore.exceptions import ClientError

AUTO_DELETE_TAG = "aws-cdk:auto-delete-objects"


class DestroyError(Exception):
    pass


def destroy_stacks(session: boto3.Session, prefix: str, timeout: float = 120) -> list[str]:
    """Delete every live stack named `<prefix>-*`, dependents first; returns their names."""
    cloudformation = session.client("cloudformation")
    stacks = [
        s for s in cloudformation.describe_stacks()["Stacks"]
        if s["StackName"].startswith(f"{prefix}-") and s["StackStatus"] != "DELETE_COMPLETE"
    ]
    # Created in dependency order, so the newest depends on the older ones.
    stacks.sort(key=lambda s: s["CreationTime"], reverse=True)
    for stack in stacks:
        name = stack["StackName"]
        _empty_auto_delete_buckets(session, name)
        try:
            cloudformation.delete_stack(StackName=name)
        except ClientError as error:
            # moto gives up on a VPC whose endpoints and route tables it did not delete
            # (CloudFormation deletes them first) and drops the stack anyway: finish the job.
            vpc = re.search(r"(vpc-[0-9a-f]+) has dependencies", str(error))
            if vpc is None:
                raise
            ec2 = session.client("ec2")
            _delete_vpc_dependents(ec2, vpc.group(1))
            ec2.delete_vpc(VpcId=vpc.group(1))
        started = time.monotonic()
        while True:
            status = _status(cloudformation, name)
            if status in (None, "DELETE_COMPLETE"):
                break
            if status == "DELETE_FAILED" or time.monotonic() - started > timeout:
                raise DestroyError(f"{name}: {status}")
            time.sleep(0.2)
    return [s["StackName"] for s in stacks]


def _status(cloudformation, name: str) -> str | None:
    for stack in cloudformation.describe_stacks()["Stacks"]:
        if stack["StackName"] == name:
            return stack["StackStatus"]
    return None


def _empty_auto_delete_buckets(session: boto3.Session, stack: str) -> None:
    s3 = session.client("s3")
    resources = session.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]
    for resource in resources:
        if resource["ResourceType"] != "AWS::S3::Bucket":
            continue
        bucket = resource["PhysicalResourceId"]
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket).get("TagSet", [])}
        if tags.get(AUTO_DELETE_TAG) != "true":
            continue
        # Always the first page, until there is none: paging on past a marker that was just
        # deleted ends early in moto (after 1,000 objects the bucket stayed, with the rest).
        while True:
            page = s3.list_object_versions(Bucket=bucket, MaxKeys=1000)
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if not objects:
                break
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})


def _delete_vpc_dependents(ec2, vpc: str) -> None:
    only = [{"Name": "vpc-id", "Values": [vpc]}]
    endpoints = [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints(Filters=only)["VpcEndpoints"]]
    if endpoints:
        ec2.delete_vpc_endpoints(VpcEndpointIds=endpoints)
    for log in ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"]:
        ec2.delete_flow_logs(FlowLogIds=[log["FlowLogId"]])
    for subnet in ec2.describe_subnets(Filters=only)["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    for table in ec2.describe_route_tables(Filters=only)["RouteTables"]:
        if not any(a.get("Main") for a in table.get("Associations", [])):
            for association in table.get("Associations", []):
                ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
            ec2.delete_route_table(RouteTableId=table["RouteTableId"])
    for group in ec2.describe_security_groups(Filters=only)["SecurityGroups"]:
        if group["GroupName"] != "default":
            ec2.delete_security_group(GroupId=group["GroupId"])
