"""Builds the FraudLab CDK app: the stacks, their tags, and cdk-nag enforcement."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Aws, CfnResource, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from processing.features import FEATURE_COLUMNS
from stacks import checkov
from stacks.config import LabConfig
from stacks.data_stack import DataProps, DataStack
from stacks.endpoint_stack import EndpointProps, EndpointStack
from stacks.ml_platform_stack import MlPlatformProps, MlPlatformStack
from stacks.monitoring_stack import MonitoringProps, MonitoringStack
from stacks.network_stack import NetworkProps, NetworkStack

PROJECT_TAG = ("project", "fraudlab")
# IAM roles are global: this tag says which region's lab a role belongs to (step 10's audit).
REGION_TAG = "fraudlab:region"
CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def new_app(outdir: str | None = None, overrides: dict[str, Any] | None = None) -> App:
    """An App with cdk.json's context, so in-process synth (tests, offline lab) matches the CLI.

    The CLI's own context (-c key=value) still wins over cdk.json, as with `cdk synth`;
    `overrides` win over both.
    """
    context = json.loads(CDK_JSON.read_text())["context"]
    return App(context=context, post_cli_context=overrides or {}, outdir=outdir)


def build_lab(app: App) -> dict[str, object]:
    """Add every lab stack to `app`; returns them by short name (network, data, ml[, endpoint])."""
    config = LabConfig.from_context(app.node)
    prefix = config.stack_prefix
    # Stack tags reach resources CloudFormation creates that the CDK cannot tag itself.
    stack_tags = dict([PROJECT_TAG])

    data = DataStack(
        app,
        f"{prefix}-Data",
        description="FraudLab: KMS key, lab bucket, Firehose transaction stream",
        tags=stack_tags,
        props=DataProps(
            firehose_buffer_mib=config.firehose_buffer_mib,
            firehose_buffer_seconds=config.firehose_buffer_seconds,
            log_retention=config.log_retention,
            access_log_expiration_days=config.access_log_expiration_days,
            noncurrent_version_days=config.noncurrent_version_days,
        ),
    )
    network = NetworkStack(
        app,
        f"{prefix}-Network",
        description="FraudLab: isolated VPC for SageMaker (no NAT)",
        tags=stack_tags,
        props=NetworkProps(
            max_azs=config.max_azs,
            interface_endpoints=config.interface_endpoints,
            metrics_endpoint=config.drift_monitor == "kit",
            log_retention=config.log_retention,
            key_arn_export=data.key_arn_export,
        ),
    )
    network.add_stack_dependency(data, "imports the lab key (flow logs are encrypted with it) by export name")
    ml = MlPlatformStack(
        app,
        f"{prefix}-MLPlatform",
        description="FraudLab: SageMaker execution roles (one per kind of job) and model registry",
        tags=stack_tags,
        props=MlPlatformProps(
            vpc=network.vpc,
            subnet_ids=network.isolated_subnet_ids,
            security_group=network.sagemaker_sg,
            bucket_arn_export=data.bucket_arn_export,
            key_arn_export=data.key_arn_export,
            model_package_group_name=config.model_package_group_name,
            alert_email=config.alert_email,
            endpoint_stack_name=f"{prefix}-Endpoint",
        ),
    )

    ml.add_stack_dependency(data, "imports the lab bucket and key by export name")
    stacks = {"network": network, "data": data, "ml": ml}

    # The endpoint exists once a model is approved: cdk deploy -c fraudlab:modelPackageArn=<arn>
    if config.model_package_arn:
        stacks["endpoint"] = EndpointStack(
            app,
            f"{prefix}-Endpoint",
            description="FraudLab: real-time fraud scoring endpoint",
            tags=stack_tags,
            props=EndpointProps(
                model_package_arn=config.model_package_arn,
                role_arn_export=ml.role_arn_exports["Serving"],
                bucket_arn_export=data.bucket_arn_export,
                key_arn_export=data.key_arn_export,
                subnet_ids=network.isolated_subnet_ids,
                security_group_id=network.sagemaker_sg.security_group_id,
                instance_type=config.endpoint_instance_type,
                min_instances=config.endpoint_min_instances,
                max_instances=config.endpoint_max_instances,
                target_invocations_per_instance=config.target_invocations_per_instance,
                capture_sampling_percent=config.capture_sampling_percent,
                serverless=config.serverless,
                latency_alarm_ms=config.latency_alarm_ms,
                alerts_topic_export=ml.alerts_topic_export,
                log_retention=config.log_retention,
            ),
        )
        stacks["endpoint"].add_stack_dependency(ml, "imports the serving role, bucket and key by export name")

        # Drift monitoring watches the endpoint's captured traffic (none on serverless).
        if config.drift_monitor != "off" and not config.serverless:
            stacks["monitoring"] = MonitoringStack(
                app,
                f"{prefix}-Monitoring",
                description="FraudLab: scheduled data-quality drift monitoring of the endpoint",
                tags=stack_tags,
                props=MonitoringProps(
                    mode=config.drift_monitor,
                    schedule_hours=config.drift_schedule_hours,
                    drift_threshold=config.drift_threshold,
                    instance_type=config.monitor_instance_type,
                    stack_prefix=prefix,
                    feature_count=len(FEATURE_COLUMNS),
                    role_arn_export=ml.role_arn_exports["Monitoring"],
                    bucket_arn_export=data.bucket_arn_export,
                    key_arn_export=data.key_arn_export,
                    alerts_topic_export=ml.alerts_topic_export,
                    endpoint_name_export=stacks["endpoint"].endpoint_name_export,
                    pipeline_arn_export=ml.pipeline_arn_export,
                    subnet_ids=network.isolated_subnet_ids,
                    security_group_id=network.sagemaker_sg.security_group_id,
                ),
            )
            stacks["monitoring"].add_stack_dependency(stacks["endpoint"], "imports the endpoint name by export name")

    _drop_redundant_provider_depends_on(app)
    for handler in _provider_lambdas(app):
        for check_id, reason in PROVIDER_LAMBDA_REASONS.items():
            checkov.accept(handler, check_id, reason)
    Tags.of(app).add(*PROJECT_TAG)
    Tags.of(app).add(REGION_TAG, Aws.REGION, include_resource_types=["AWS::IAM::Role"])
    # Violations stop synth; acknowledgements live next to the construct they excuse.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stacks


def _provider_lambdas(app: App) -> list[CfnResource]:
    """The CDK's own custom-resource Lambdas (empty buckets at destroy, close the default SG)."""
    return [
        construct
        for construct in app.node.find_all()
        if isinstance(construct, CfnResource)
        and construct.cfn_resource_type == "AWS::Lambda::Function"
        and construct.node.scope is not None
        and construct.node.scope.node.id.startswith("Custom::")
    ]


# Why the CDK's provider Lambdas keep the defaults checkov flags.
PROVIDER_LAMBDA_REASONS = {
    "CKV_AWS_115": "reserved concurrency would fail deployment on new accounts (their concurrency "
    "limit is 10, all of it unreserved); CloudFormation invokes it once per deploy or destroy",
    "CKV_AWS_116": "invoked synchronously by CloudFormation, which retries and reports a failure "
    "itself; a dead-letter queue only serves asynchronous invocations",
    "CKV_AWS_117": "runs only during deploy and destroy, outside the data path; the bucket emptier "
    "would need the VPC of a stack that depends on its own, the security-group closer the EC2 "
    "API, which the isolated VPC reaches only through a paid interface endpoint",
}


def _drop_redundant_provider_depends_on(app: App) -> None:
    """CDK's custom-resource provider Lambdas both DependsOn and GetAtt their role.

    The GetAtt already orders creation, so the DependsOn is redundant (cfn-lint W3005);
    removing it keeps every template lint-clean without ignoring the check globally.
    """
    for handler in _provider_lambdas(app):
        handler.add_deletion_override("DependsOn")
