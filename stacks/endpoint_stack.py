"""Endpoint: the approved model package served in the isolated VPC, captured, scaled, watched."""
from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnOutput, Duration, Fn, RemovalPolicy, Stack, Validations
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks import checkov

# The variant name must stay the same across updates, or the autoscaling target that
# points at it is orphaned (and deregistration fails on delete).
VARIANT = "AllTraffic"
CAPTURE_PREFIX = "capture"


@dataclass(frozen=True)
class EndpointProps:
    model_package_arn: str
    # Named exports of the stacks below: importing them leaves those stacks unchanged.
    role_arn_export: str
    bucket_arn_export: str
    key_arn_export: str
    subnet_ids: list[str]
    security_group_id: str
    instance_type: str
    min_instances: int
    max_instances: int
    target_invocations_per_instance: int
    capture_sampling_percent: int
    serverless: bool
    latency_alarm_ms: int
    alerts_topic_export: str
    log_retention: logs.RetentionDays


class EndpointStack(Stack):
    """Model (from the registry) -> endpoint config (KMS, data capture) -> endpoint, with
    target-tracking autoscaling and alarms on 5xx errors and model latency."""

    def __init__(self, scope: Construct, construct_id: str, *, props: EndpointProps, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        key_arn = Fn.import_value(props.key_arn_export)
        # arn:aws:s3:::<bucket> -> <bucket>
        bucket_name = Fn.select(5, Fn.split(":", Fn.import_value(props.bucket_arn_export)))

        # Serverless Inference supports neither VpcConfig nor network isolation (nor data
        # capture): CreateEndpoint fails on a model that sets them.
        model = sagemaker.CfnModel(
            self,
            "FraudModel",
            execution_role_arn=Fn.import_value(props.role_arn_export),
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(model_package_name=props.model_package_arn),
            vpc_config=None if props.serverless else sagemaker.CfnModel.VpcConfigProperty(
                subnets=props.subnet_ids, security_group_ids=[props.security_group_id]
            ),
            enable_network_isolation=None if props.serverless else True,
        )
        if props.serverless:
            checkov.accept(
                model,
                "CKV_AWS_370",
                "Serverless Inference supports neither VPC configuration nor network isolation: "
                "the opt-in trade-off of fraudlab:serverless",
            )
            Validations.of(model).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SM1",
                    reason="Serverless Inference does not support VpcConfig; the serverless variant is an opt-in trade-off documented in the README.",
                )
            )

        if props.serverless:
            # Serverless has no instance volume to encrypt and no data capture: cheaper when
            # idle, cold starts of seconds when not (see README, "Serving options").
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                model_name=model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(max_concurrency=5, memory_size_in_mb=2048),
            )
            config = sagemaker.CfnEndpointConfig(self, "EndpointConfig", production_variants=[variant])
            Validations.of(config).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SM3",
                    reason="Serverless variants have no ML storage volume; SageMaker rejects a KmsKeyId for them.",
                )
            )
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                model_name=model.attr_model_name,
                initial_instance_count=props.min_instances,
                instance_type=props.instance_type,
                initial_variant_weight=1.0,
            )
            config = sagemaker.CfnEndpointConfig(
                self,
                "EndpointConfig",
                production_variants=[variant],
                kms_key_id=key_arn,
                data_capture_config=sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                    enable_capture=True,
                    initial_sampling_percentage=props.capture_sampling_percent,
                    destination_s3_uri=Fn.join("", ["s3://", bucket_name, f"/{CAPTURE_PREFIX}"]),
                    kms_key_id=key_arn,
                    capture_options=[
                        sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                        sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                    ],
                    capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                        csv_content_types=["text/csv"], json_content_types=["application/json"]
                    ),
                ),
            )
        # Named, so its log group (which SageMaker would create, unencrypted, never expiring,
        # and leave behind) can be created first: encrypted, expiring, deleted with the stack.
        endpoint_name = f"{self.stack_name}-fraud-scoring"
        log_group = logs.LogGroup(
            self,
            "EndpointLogs",
            log_group_name=f"/aws/sagemaker/Endpoints/{endpoint_name}",
            encryption_key=kms.Key.from_key_arn(self, "LabKey", key_arn),
            retention=props.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_name=endpoint_name, endpoint_config_name=config.attr_endpoint_config_name
        )
        endpoint.node.add_dependency(log_group)
        for resource in (model, config, endpoint):
            resource.apply_removal_policy(RemovalPolicy.DESTROY)

        if not props.serverless:
            target = autoscaling.ScalableTarget(
                self,
                "ScalableTarget",
                service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
                resource_id=f"endpoint/{endpoint.attr_endpoint_name}/variant/{VARIANT}",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=props.min_instances,
                max_capacity=props.max_instances,
            )
            target.scale_to_track_metric(
                "InvocationsPerInstance",
                predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                target_value=props.target_invocations_per_instance,
                scale_in_cooldown=Duration.minutes(5),
                scale_out_cooldown=Duration.minutes(1),
            )

        dimensions = {"EndpointName": endpoint.attr_endpoint_name, "VariantName": VARIANT}
        notify = cloudwatch_actions.SnsAction(sns.Topic.from_topic_arn(self, "Alerts", Fn.import_value(props.alerts_topic_export)))
        errors = cloudwatch.Alarm(
            self,
            "ServerErrors",
            alarm_description="FraudLab endpoint returned 5xx errors",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker", metric_name="Invocation5XXErrors", dimensions_map=dimensions,
                statistic="Sum", period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        latency = cloudwatch.Alarm(
            self,
            "ModelLatency",
            alarm_description=f"FraudLab model latency p99 above {props.latency_alarm_ms} ms",
            # ModelLatency is reported in microseconds.
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker", metric_name="ModelLatency", dimensions_map=dimensions,
                statistic="p99", period=Duration.minutes(1),
            ),
            threshold=props.latency_alarm_ms * 1000,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        for alarm in (errors, latency):
            alarm.add_alarm_action(notify)
            alarm.add_ok_action(notify)

        # Named export: the monitoring stack watches this endpoint.
        self.endpoint_name_export = f"{self.stack_name}-EndpointName"
        CfnOutput(self, "EndpointName", value=endpoint.attr_endpoint_name, export_name=self.endpoint_name_export)
        CfnOutput(self, "VariantName", value=VARIANT)
        CfnOutput(self, "ModelPackageArn", value=props.model_package_arn)
