"""ML platform: one SageMaker execution role per kind of job, the model registry group, the alerts topic."""
from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.images import XGBOOST, image_map
from stacks.layout import JOB_ACCESS, LABELS_PREFIX, RAW_PREFIX, JobAccess
from stacks.pipeline_definition import PipelineResources, pipeline_definition
from stacks.service_role import service_role

METRICS_NAMESPACE = "FraudLab"
# Where SageMaker publishes with the execution role (SageMaker docs, "How to use SageMaker
# execution roles": cloudwatch:PutMetricData for CreateTrainingJob, CreateProcessingJob and
# CreateModel): the built-in algorithm's training metrics and each job's or endpoint
# instance's CPU, memory and disk. Invocation metrics (AWS/SageMaker) SageMaker publishes itself.
SAGEMAKER_NAMESPACES = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/Endpoints")


@dataclass(frozen=True)
class MlPlatformProps:
    vpc: ec2.IVpc
    subnet_ids: list[str]
    security_group: ec2.ISecurityGroup
    bucket_arn_export: str
    key_arn_export: str
    model_package_group_name: str
    alert_email: str  # "" for none: alarms still change state, nobody is emailed
    endpoint_stack_name: str  # its alarms guard step 09's updates (CloudFormation names them <stack>-<id>-<suffix>)


class MlPlatformStack(Stack):
    """What every SageMaker step shares: who it runs as, and where models are registered."""

    def __init__(self, scope: Construct, construct_id: str, *, props: MlPlatformProps, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        bucket = s3.Bucket.from_bucket_arn(self, "LabBucket", Fn.import_value(props.bucket_arn_export))
        key = kms.Key.from_key_arn(self, "LabKey", Fn.import_value(props.key_arn_export))

        self.roles: dict[str, iam.Role] = {}
        for access in JOB_ACCESS:
            self.roles[access.role], policy = service_role(
                self,
                f"{access.role}Role",
                f"{access.role}Policy",
                service="sagemaker.amazonaws.com",
                description=access.description,
                statements=_execution_statements(props, bucket, key, access),
            )
            Validations.of(policy).acknowledge(*_acknowledgements(props, access))

        # The group's name is part of every package ARN the later steps pass around.
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "FraudModelGroup",
            model_package_group_name=props.model_package_group_name,
            model_package_group_description="FraudLab transaction fraud classifiers (XGBoost)",
        )
        self.model_package_group.apply_removal_policy(RemovalPolicy.DESTROY)

        # Alarms of the endpoint and the drift monitor notify this topic. Its own key: CloudWatch
        # must be allowed to encrypt to it, and that should not widen the lab data key.
        alerts_key = kms.Key(
            self,
            "AlertsKey",
            description="FraudLab alerts topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        alerts_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        self.alerts_topic = sns.Topic(
            self, "AlertsTopic", display_name="FraudLab alerts", master_key=alerts_key, enforce_ssl=True
        )
        # enforce_ssl writes a topic policy, which replaces SNS's default one: let alarms publish.
        self.alerts_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.alerts_topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        if props.alert_email:
            self.alerts_topic.add_subscription(subscriptions.EmailSubscription(props.alert_email))
        # Where step 08 reads the alarm's notification: an email subscription needs an address
        # and a confirmation, a queue needs neither (and costs nothing at lab volumes).
        inbox = sqs.Queue(
            self,
            "AlertsInbox",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=alerts_key,  # the subscription lets SNS use it, for this topic only
            enforce_ssl=True,
            retention_period=Duration.days(1),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Subscribed by hand: SqsSubscription would name the topic's ARN in the key's policy,
        # and the topic is encrypted with that key (a circular dependency).
        sns.Subscription(self, "AlertsInboxSubscription", topic=self.alerts_topic, endpoint=inbox.queue_arn, protocol=sns.SubscriptionProtocol.SQS)
        inbox.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[inbox.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": self.alerts_topic.topic_arn}},
            )
        )
        alerts_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="SnsDeliversToTheInbox",
                principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" is this key
                # the alerts topic, by the name CloudFormation gives it (a Ref would be circular)
                conditions={"ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}:{self.stack_name}-AlertsTopic*"}},
            )
        )
        Validations.of(inbox).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="The inbox only holds alarm notifications for step 08 to show, kept a day; "
                "a message that cannot be read has nothing to retry, so a dead-letter queue would stay empty.",
            )
        )

        # Named exports: the endpoint and monitoring stacks import them, so adding those stacks
        # later does not change this one (a CDK-generated export would appear only then).
        self.role_arn_exports = {}
        for name, role in self.roles.items():
            self.role_arn_exports[name] = f"{self.stack_name}-{name}RoleArn"
            CfnOutput(self, f"{name}RoleArn", value=role.role_arn, export_name=self.role_arn_exports[name])
        self.alerts_topic_export = f"{self.stack_name}-AlertsTopicArn"
        CfnOutput(self, "AlertsTopicArn", value=self.alerts_topic.topic_arn, export_name=self.alerts_topic_export)
        CfnOutput(self, "AlertsInboxUrl", value=inbox.queue_url)
        CfnOutput(self, "ModelPackageGroupName", value=props.model_package_group_name)
        image_uri = image_map(self, "XgboostImage", *XGBOOST).find_in_map(Aws.REGION, "uri")
        CfnOutput(self, "XgboostImageUri", value=image_uri)
        CfnOutput(self, "ModelPackageGroupArn", value=self.model_package_group.attr_model_package_group_arn)

        # Steps 02-04 as one SageMaker Pipeline (step 07 starts it).
        pipeline_name = f"{self.stack_name}-training"
        pipeline_role, pipeline_policy = service_role(
            self, "PipelineRole", "PipelinePolicy", service="sagemaker.amazonaws.com",
            description="FraudLab training pipeline: starts its jobs as the job roles, registers the model",
            statements=_pipeline_statements(props, bucket, key, [self.roles[r] for r in ("Processing", "Training", "Evaluation")]),
        )
        Validations.of(pipeline_policy).acknowledge(*_pipeline_acknowledgements(props))
        definition = pipeline_definition(PipelineResources(
            bucket=bucket.bucket_name, raw_prefix=RAW_PREFIX, labels_prefix=LABELS_PREFIX, key_arn=key.key_arn,
            processing_role_arn=self.roles["Processing"].role_arn, training_role_arn=self.roles["Training"].role_arn,
            evaluation_role_arn=self.roles["Evaluation"].role_arn, image_uri=image_uri, subnet_ids=props.subnet_ids,
            security_group_id=props.security_group.security_group_id, model_package_group_name=props.model_package_group_name,
        ))
        pipeline = sagemaker.CfnPipeline(
            self, "TrainingPipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description="FraudLab steps 02-04: features, training, evaluation, registration gate",
            role_arn=pipeline_role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": self.to_json_string(definition)},
        )
        pipeline.node.add_dependency(pipeline_policy)  # executions need the policy from the start
        self.pipeline_name = pipeline_name
        self.pipeline_arn_export = f"{self.stack_name}-PipelineArn"
        CfnOutput(self, "PipelineName", value=pipeline_name)
        CfnOutput(self, "PipelineArn", value=f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:pipeline/{pipeline_name.lower()}",
                  export_name=self.pipeline_arn_export)


def _pipeline_statements(props: MlPlatformProps, bucket: s3.IBucket, key: kms.IKey, job_roles: list[iam.Role]) -> list[iam.PolicyStatement]:
    """What SageMaker Pipelines does as this role: start and follow the pipeline's jobs
    (named pipelines-<execution id>-...), read the property files its steps declare, register
    the model in the lab's group, and hand the jobs their own roles."""
    region, account, partition = Aws.REGION, Aws.ACCOUNT_ID, Aws.PARTITION
    group = props.model_package_group_name
    return [
        iam.PolicyStatement(
            sid="RunPipelineJobs",
            actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
                     "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
            resources=[f"arn:{partition}:sagemaker:{region}:{account}:processing-job/pipelines-*",
                       f"arn:{partition}:sagemaker:{region}:{account}:training-job/pipelines-*"],
        ),
        iam.PolicyStatement(
            sid="RegisterModel",
            actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"],
            resources=[f"arn:{partition}:sagemaker:{region}:{account}:model-package-group/{group}",
                       f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/*"],
        ),
        iam.PolicyStatement(
            sid="PassJobRoles",
            actions=["iam:PassRole"],
            resources=[role.role_arn for role in job_roles],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            sid="ReadPropertyFiles",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects("features/pipeline-*"), bucket.arn_for_objects("evaluation/pipeline-*")],
        ),
        iam.PolicyStatement(sid="DecryptPropertyFiles", actions=["kms:Decrypt"], resources=[key.key_arn]),
    ]


def _pipeline_acknowledgements(props: MlPlatformProps) -> list[Acknowledgment]:
    group = props.model_package_group_name
    return [
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:processing-job/pipelines-*]",
            reason="SageMaker Pipelines names each job pipelines-<execution id>-<step>-<random> at run time; only those jobs.",
        ),
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/pipelines-*]",
            reason="SageMaker Pipelines names each job pipelines-<execution id>-<step>-<random> at run time; only those jobs.",
        ),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/{group}/*]",
            reason="Each registration creates a new version (model-package/<group>/<n>); only this lab's group.",
        ),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{props.bucket_arn_export}/features/pipeline-*]",
            reason="The Condition and Training steps read property files under the run's own features/pipeline-<execution id>/ prefix.",
        ),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{props.bucket_arn_export}/evaluation/pipeline-*]",
            reason="The gate reads evaluation.json under the run's own evaluation/pipeline-<execution id>/ prefix.",
        ),
    ]


def _acknowledgements(props: MlPlatformProps, access: JobAccess) -> list[Acknowledgment]:
    def mode(prefix: str) -> str:
        return {(True, False): "read", (False, True): "write", (True, True): "read and write"}[(prefix in access.reads, prefix in access.writes)]

    prefixes = [
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{props.bucket_arn_export}/{prefix}*]",
            reason=f"{access.role} jobs {mode(prefix)} objects they name at run time, only under the '{prefix}' prefix.",
        )
        for prefix in dict.fromkeys(access.reads + access.writes)
    ]
    return [
        *prefixes,
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason=(
                "Only actions without resource-level permissions use '*': ecr:GetAuthorizationToken, "
                "ec2:Describe* calls for VPC placement, and cloudwatch:PutMetricData (limited by a "
                "cloudwatch:namespace condition to SageMaker's own job and endpoint namespaces"
                f"{' and ' + METRICS_NAMESPACE if access.role == 'Monitoring' else ''})."
            ),
        ),
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/*]",
            reason="SageMaker names job and endpoint log groups and streams itself (/aws/sagemaker/ProcessingJobs etc.).",
        ),
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:*:repository/sagemaker-*]",
            reason="Built-in algorithm images live in AWS-owned registries whose account differs per region.",
        ),
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]",
            reason="SageMaker creates the job's ENIs with IDs unknown in advance; limited to this account and region.",
        ),
        *([Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:{props.endpoint_stack_name}-*]",
            reason="CloudFormation names the endpoint stack's alarms <stack>-<logical id>-<suffix>; only that stack's, read to roll an update back.",
        )] if access.role == "Serving" else []),
    ]


def _execution_statements(props: MlPlatformProps, bucket: s3.IBucket, key: kms.IKey, access: JobAccess) -> list[iam.PolicyStatement]:
    region, account, partition = Aws.REGION, Aws.ACCOUNT_ID, Aws.PARTITION
    namespaces = [*SAGEMAKER_NAMESPACES, *([METRICS_NAMESPACE] if access.role == "Monitoring" else [])]
    return [
        iam.PolicyStatement(
            sid="ReadLabData",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{p}*") for p in access.reads],
        ),
        iam.PolicyStatement(
            sid="WriteLabOutputs",
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(f"{p}*") for p in access.writes],
        ),
        iam.PolicyStatement(
            sid="ListOwnPrefixes",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in dict.fromkeys(access.reads + access.writes)]}},
        ),
        iam.PolicyStatement(sid="LocateLabBucket", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]),
        iam.PolicyStatement(
            sid="UseLabKey",
            actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey"],
            resources=[key.key_arn],
        ),
        iam.PolicyStatement(
            sid="JobLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"],
        ),
        iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        iam.PolicyStatement(
            sid="PullBuiltInImages",
            actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            resources=[f"arn:{partition}:ecr:{region}:*:repository/sagemaker-*"],
        ),
        iam.PolicyStatement(
            sid="DescribeVpcPlacement",
            actions=[
                "ec2:DescribeVpcs",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeDhcpOptions",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="JobNetworkInterfaces",
            actions=[
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            resources=[
                f"arn:{partition}:ec2:{region}:{account}:network-interface/*",
                *[f"arn:{partition}:ec2:{region}:{account}:subnet/{s}" for s in props.subnet_ids],
                f"arn:{partition}:ec2:{region}:{account}:security-group/{props.security_group.security_group_id}",
            ],
        ),
        iam.PolicyStatement(
            sid="PublishLabMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": namespaces}},
        ),
        # SageMaker reads an update's AutoRollbackConfiguration alarms with the endpoint's
        # execution role ("Ensure that your IAM execution role has permission to perform the
        # cloudwatch:DescribeAlarms action", deployment guardrails guide): without it step
        # 09's canary is refused or never rolls back.
        *([iam.PolicyStatement(
            sid="ReadRollbackAlarms",
            actions=["cloudwatch:DescribeAlarms"],
            resources=[f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{props.endpoint_stack_name}-*"],
        )] if access.role == "Serving" else []),
    ]

