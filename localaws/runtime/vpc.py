"""What a container placed in a VPC can reach: the AWS services of that VPC's endpoints.

SageMaker attaches a job's or model's container to the subnets and security groups of its
VpcConfig. From there it reaches an AWS service only through a route the VPC has: a
gateway endpoint in the subnets' route table (S3, DynamoDB), an interface endpoint with
private DNS whose security groups admit HTTPS from the container's groups, or a NAT
gateway (then everything). Offline the container gets the local AWS for exactly those
services and an address that refuses connections for every other one, so a job that
needs an endpoint the VPC lacks fails offline as it fails on AWS (where the call times
out). Without a VpcConfig the container is on SageMaker's own network, with internet: the
whole local AWS. Network isolation (no network at all) is applied elsewhere
(image_env.network_sandbox).
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from botocore.exceptions import ClientError

HTTPS = 443
# VPC endpoint service names (com.amazonaws.<region>.<name>) whose botocore service id is
# not the name itself; every other name is its service id (s3 -> S3, sts -> STS, kms -> KMS).
SERVICE_IDS = {
    "monitoring": "CloudWatch",
    "logs": "CloudWatch Logs",
    "sagemaker.api": "SageMaker",
    "sagemaker.runtime": "SageMaker Runtime",
    "ecr.api": "ECR",
    "events": "EventBridge",
    "execute-api": "API Gateway",
}
NOT_AN_API = {"ecr.dkr"}  # the image registry: SageMaker pulls images through it, boto3 never calls it

_refusing: socket.socket | None = None
_refusing_lock = threading.Lock()  # containers start from several threads


class VpcConfigError(ValueError):
    """The VpcConfig names subnets or security groups that do not exist; str() says which."""


def refusing_url() -> str:
    """A loopback address that refuses every connection (a port bound but never listened
    on, held for this process's life): where calls to unreachable services go."""
    global _refusing
    with _refusing_lock:
        if _refusing is None:
            _refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            _refusing.bind(("127.0.0.1", 0))
    return f"http://127.0.0.1:{_refusing.getsockname()[1]}"


def endpoint_variable(service_id: str) -> str:
    """botocore's service-specific endpoint variable (it wins over AWS_ENDPOINT_URL)."""
    return "AWS_ENDPOINT_URL_" + service_id.replace(" ", "_").upper()


def service_id(endpoint_service_name: str) -> str | None:
    name = endpoint_service_name.split(".", 3)[-1]  # com.amazonaws.<region>.<name>
    if name in NOT_AN_API:
        return None
    return SERVICE_IDS.get(name, name.upper())


def reachable_services(ec2, vpc_config: dict[str, Any]) -> set[str] | None:
    """botocore service ids the VpcConfig's subnets and groups reach, or None for all of
    them (a NAT gateway route)."""
    subnets = ec2.describe_subnets(SubnetIds=vpc_config["Subnets"])["Subnets"]
    groups = {g["GroupId"] for g in ec2.describe_security_groups(GroupIds=vpc_config["SecurityGroupIds"])["SecurityGroups"]}
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [s["SubnetId"] for s in subnets]}])["RouteTables"]
    if any(route.get("NatGatewayId") and route.get("DestinationCidrBlock") == "0.0.0.0/0" for t in tables for route in t["Routes"]):
        return None
    table_ids = {t["RouteTableId"] for t in tables}
    cidrs = [ipaddress.ip_network(s["CidrBlock"]) for s in subnets]
    vpc_ids = {s["VpcId"] for s in subnets}
    endpoints = [e for e in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": sorted(vpc_ids)}])["VpcEndpoints"]
                 if e.get("State", "available").lower() == "available"]
    # Interface endpoints usually share one group: each group is described and judged once.
    endpoint_groups = sorted({g["GroupId"] for e in endpoints for g in e.get("Groups", [])})
    described = ec2.describe_security_groups(GroupIds=endpoint_groups)["SecurityGroups"] if endpoint_groups else []
    admitting = {group["GroupId"] for group in described if _admits_https(group, groups, cidrs)}
    reached = set()
    for endpoint in endpoints:
        if endpoint["VpcEndpointType"] == "Gateway":
            usable = bool(table_ids & set(endpoint.get("RouteTableIds", [])))
        else:
            usable = endpoint.get("PrivateDnsEnabled", False) and any(g["GroupId"] in admitting for g in endpoint.get("Groups", []))
        service = service_id(endpoint["ServiceName"])
        if usable and service:
            reached.add(service)
    return reached


def _admits_https(group: dict, sources: set[str], cidrs: list) -> bool:
    """Whether an endpoint's security group lets HTTPS in from the container's groups (or
    from CIDRs covering its subnets)."""
    for rule in group.get("IpPermissions", []):
        if not _covers_https(rule):
            continue
        if sources & {pair["GroupId"] for pair in rule.get("UserIdGroupPairs", [])}:
            return True
        ranges = [ipaddress.ip_network(r["CidrIp"]) for r in rule.get("IpRanges", [])]
        if cidrs and all(any(cidr.subnet_of(r) for r in ranges) for cidr in cidrs):
            return True
    return False


def _covers_https(rule: dict) -> bool:
    if rule.get("IpProtocol") in ("-1", "all"):
        return True
    return rule.get("IpProtocol") == "tcp" and rule.get("FromPort", 0) <= HTTPS <= rule.get("ToPort", 65535)


def network_environment(local: dict[str, str], ec2, vpc_config: dict[str, Any] | None, *, role_ec2) -> dict[str, str]:
    """The variables that give a container with network access its AWS: `local` (the local
    AWS's environment) as it is without a VpcConfig; in a VPC, the local AWS for the
    services the VPC reaches and a refusing address for the rest.

    SageMaker looks up the VpcConfig's subnets and groups with the execution role (`role_ec2`,
    whose Describe* IAM then checks); what the VPC reaches is the network's own doing (`ec2`)."""
    if not vpc_config:
        return dict(local)
    try:
        role_ec2.describe_subnets(SubnetIds=vpc_config["Subnets"])
        role_ec2.describe_security_groups(GroupIds=vpc_config["SecurityGroupIds"])
        reached = reachable_services(ec2, vpc_config)
    except ClientError as error:  # what SageMaker answers for a subnet or group that is not there
        raise VpcConfigError(f"VpcConfig: {error.response['Error']['Message']}") from None
    if reached is None:
        return dict(local)
    refused = refusing_url()
    routed = {key: value for key, value in local.items() if key.startswith("AWS_ENDPOINT_URL")}
    environment = {key: value for key, value in local.items() if key not in routed}
    environment["AWS_ENDPOINT_URL"] = refused
    for service in sorted(reached):
        variable = endpoint_variable(service)
        environment[variable] = routed.get(variable, routed.get("AWS_ENDPOINT_URL", refused))
    return environment
