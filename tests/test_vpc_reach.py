"""What a container in a VPC reaches offline: the services of that VPC's endpoints, as on AWS.

Built in a region of its own on the shared local AWS (the lab's stacks live in us-east-1)
and removed afterwards, so no teardown audit sees it."""
from __future__ import annotations

import socket
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

import pytest

from labkit.model_artifact import serving_artifact
from localaws.runtime import vpc
from tests.helpers import TEST_MODEL_ENVIRONMENT, sagemaker_role
from tests.test_endpoint_variants import training_artifact

REGION = "eu-north-1"


@pytest.fixture(scope="module")
def network(local_aws):
    server, _ = local_aws
    ec2 = server.session(REGION).client("ec2")
    undo = []  # the delete calls, made in reverse order at the end
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    undo.append(partial(ec2.delete_vpc, VpcId=vpc_id))
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    undo.append(partial(ec2.delete_subnet, SubnetId=subnet))
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    undo.append(partial(ec2.delete_route_table, RouteTableId=table))
    association = ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)["AssociationId"]
    undo.append(partial(ec2.disassociate_route_table, AssociationId=association))

    def group(name: str, **rule) -> str:
        ident = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)["GroupId"]
        undo.append(partial(ec2.delete_security_group, GroupId=ident))
        if rule:
            ec2.authorize_security_group_ingress(GroupId=ident, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, **rule}])
        return ident

    job = group("job")
    from_job, from_vpc, closed = group("from-job", UserIdGroupPairs=[{"GroupId": job}]), group("from-vpc", IpRanges=[{"CidrIp": "10.9.0.0/16"}]), group("closed")

    def endpoint(name: str, kind: str = "Interface", **arguments) -> None:
        ident = ec2.create_vpc_endpoint(VpcId=vpc_id, ServiceName=f"com.amazonaws.{REGION}.{name}", VpcEndpointType=kind, **arguments)["VpcEndpoint"]["VpcEndpointId"]
        undo.append(partial(ec2.delete_vpc_endpoints, VpcEndpointIds=[ident]))

    endpoint("s3", "Gateway", RouteTableIds=[table])
    endpoint("monitoring", SubnetIds=[subnet], SecurityGroupIds=[from_job], PrivateDnsEnabled=True)
    endpoint("sagemaker.api", SubnetIds=[subnet], SecurityGroupIds=[from_vpc], PrivateDnsEnabled=True)
    endpoint("logs", SubnetIds=[subnet], SecurityGroupIds=[closed], PrivateDnsEnabled=True)  # shuts the job out
    endpoint("sts", SubnetIds=[subnet], SecurityGroupIds=[from_job], PrivateDnsEnabled=False)  # public name: no route
    endpoint("dynamodb", "Gateway", RouteTableIds=[])  # in no route table of the subnet
    yield ec2, {"Subnets": [subnet], "SecurityGroupIds": [job]}, table, server
    for delete in reversed(undo):
        delete()


def test_a_vpc_reaches_what_its_endpoints_route_and_admit(network):
    ec2, vpc_config, _, _ = network
    assert vpc.reachable_services(ec2, vpc_config) == {"S3", "CloudWatch", "SageMaker"}


def test_in_a_vpc_unreached_services_refuse_and_reached_ones_are_the_local_aws(network):
    ec2, vpc_config, _, server = network
    local = server.environment()
    environment = vpc.network_environment(local, ec2, vpc_config, role_ec2=ec2)
    assert environment["AWS_ENDPOINT_URL_S3"] == environment["AWS_ENDPOINT_URL_CLOUDWATCH"] == local["AWS_ENDPOINT_URL"]
    assert "AWS_ENDPOINT_URL_STS" not in environment and "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" not in environment
    assert environment["AWS_REGION"] == local["AWS_REGION"]
    refused = urlparse(environment["AWS_ENDPOINT_URL"])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((refused.hostname, refused.port), timeout=5)
    assert vpc.network_environment(local, ec2, None, role_ec2=ec2) == local  # no VpcConfig: SageMaker's network, all of AWS


def test_a_nat_gateway_route_reaches_everything(network):
    ec2, vpc_config, table, server = network
    nat = ec2.create_nat_gateway(SubnetId=vpc_config["Subnets"][0], ConnectivityType="private")["NatGateway"]["NatGatewayId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    try:
        assert vpc.reachable_services(ec2, vpc_config) is None
        assert vpc.network_environment(server.environment(), ec2, vpc_config, role_ec2=ec2) == server.environment()
    finally:
        ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
        ec2.delete_nat_gateway(NatGatewayId=nat)


def test_an_endpoint_s_container_in_a_vpc_gets_only_what_the_vpc_reaches(network):
    """The serving host honours the Model's VpcConfig when it has network access (the lab's
    own models are network-isolated: test_readme_by_hand checks those get no network at all)."""
    ec2, vpc_config, _, server = network
    session = server.session(REGION)
    s3, sagemaker = session.client("s3"), session.client("sagemaker")
    bucket = "vpc-reach-models"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=serving_artifact(training_artifact(lambda x: x[:, 0] > 0), threshold=0.5))
    sagemaker.create_model(ModelName="in-vpc", ExecutionRoleArn=sagemaker_role(session, "vpc-reach"), VpcConfig=vpc_config,
                           PrimaryContainer={"Image": "xgboost:3.2-0", "ModelDataUrl": f"s3://{bucket}/model.tar.gz", "Environment": TEST_MODEL_ENVIRONMENT})
    sagemaker.create_endpoint_config(EndpointConfigName="in-vpc", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "in-vpc", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName="in-vpc", EndpointConfigName="in-vpc")
    try:
        container = server.endpoints.ensure(REGION, "in-vpc").container
        environ = dict(item.split("=", 1) for item in Path(f"/proc/{container.process.pid}/environ").read_text().split("\0") if "=" in item)
        assert environ["AWS_ENDPOINT_URL"] == vpc.refusing_url()
        assert environ["AWS_ENDPOINT_URL_S3"] == environ["AWS_ENDPOINT_URL_SAGEMAKER"] == server.tls_endpoint_url
        assert "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" not in environ and environ["SAGEMAKER_PROGRAM"] == "inference.py"
    finally:
        sagemaker.delete_endpoint(EndpointName="in-vpc")
        server.endpoints.stop(REGION, "in-vpc")
        sagemaker.delete_endpoint_config(EndpointConfigName="in-vpc")
        sagemaker.delete_model(ModelName="in-vpc")
        s3.delete_object(Bucket=bucket, Key="model.tar.gz")
        s3.delete_bucket(Bucket=bucket)
