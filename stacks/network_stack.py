"""Network: an isolated VPC where SageMaker jobs and endpoints run with no internet path."""
from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

# Interface endpoints SageMaker needs when code inside the VPC calls AWS APIs (the S3
# gateway endpoint, free, covers data). Each costs about USD 0.01 per hour per AZ plus
# USD 0.01 per GB (us-east-1, 2026-11), so 6 endpoints x 2 AZs is about USD 0.12/hour,
# USD 2.90/day if forgotten: off by default, on with -c fraudlab:interfaceEndpoints=true.
INTERFACE_ENDPOINTS = {
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
}
INTERFACE_ENDPOINT_USD_PER_HOUR_PER_AZ = 0.01
# The kit's drift job publishes its metrics from inside the VPC: CloudWatch's endpoint only,
# on whenever fraudlab:driftMonitor=kit (about USD 0.02/hour, 0.48/day with 2 AZs).
METRICS_ENDPOINT = {"CloudWatchMetrics": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING}


@dataclass(frozen=True)
class NetworkProps:
    max_azs: int
    interface_endpoints: bool
    metrics_endpoint: bool
    log_retention: logs.RetentionDays
    key_arn_export: str  # the lab key (data stack): flow logs are encrypted with it


class NetworkStack(Stack):
    """VPC with private isolated subnets (no NAT, no internet gateway) and one SG for SageMaker."""

    def __init__(self, scope: Construct, construct_id: str, *, props: NetworkProps, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=props.max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                )
            ],
        )
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            encryption_key=kms.Key.from_key_arn(self, "LabKey", Fn.import_value(props.key_arn_export)),
            retention=props.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group)
        )
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)

        # Isolated subnets have no route out, so egress can only reach the VPC's own
        # endpoints and the S3 gateway; inbound is limited to members of this group
        # (distributed training and processing hosts talk to each other).
        self.sagemaker_sg = ec2.SecurityGroup(
            self,
            "SageMakerSecurityGroup",
            vpc=self.vpc,
            description="FraudLab SageMaker jobs and endpoints: inbound only from itself",
            allow_all_outbound=True,
        )
        self.sagemaker_sg.add_ingress_rule(
            self.sagemaker_sg, ec2.Port.all_traffic(), "SageMaker hosts talk to each other"
        )

        endpoints = {**(INTERFACE_ENDPOINTS if props.interface_endpoints else {}), **(METRICS_ENDPOINT if props.metrics_endpoint else {})}
        if endpoints:
            endpoint_sg = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                description="FraudLab interface endpoints: HTTPS from the SageMaker group",
                allow_all_outbound=False,
            )
            endpoint_sg.add_ingress_rule(self.sagemaker_sg, ec2.Port.tcp(443), "HTTPS from SageMaker")
            for name, service in endpoints.items():
                # open=False: reachable from the SageMaker group only, not the whole VPC CIDR.
                self.vpc.add_interface_endpoint(
                    name, service=service, security_groups=[endpoint_sg], private_dns_enabled=True, open=False
                )

        self.isolated_subnet_ids = [s.subnet_id for s in self.vpc.isolated_subnets]
        CfnOutput(self, "VpcId", value=self.vpc.vpc_id)
        CfnOutput(self, "SubnetIds", value=",".join(self.isolated_subnet_ids))
        CfnOutput(self, "SecurityGroupId", value=self.sagemaker_sg.security_group_id)

