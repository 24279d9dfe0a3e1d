"""Data and ingest: the KMS key, the lab bucket, and Kinesis Data Firehose writing into it."""
from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack, Validations, Acknowledgment
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import checkov
from stacks.layout import RAW_ERRORS_PREFIX, RAW_PREFIX
from stacks.service_role import service_role


@dataclass(frozen=True)
class DataProps:
    firehose_buffer_mib: int
    firehose_buffer_seconds: int
    log_retention: logs.RetentionDays
    access_log_expiration_days: int
    noncurrent_version_days: int


class DataStack(Stack):
    """Customer-managed key, access-logged lab bucket, and a DirectPut delivery stream."""

    def __init__(self, scope: Construct, construct_id: str, *, props: DataProps, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.key = kms.Key(
            self,
            "LabKey",
            description="FraudLab data: lab bucket, Firehose, SageMaker volumes and outputs",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # The lab's log groups (Firehose delivery, VPC flow logs, the endpoint's, which SageMaker
        # names /aws/sagemaker/Endpoints/<endpoint>) are encrypted with this key: CloudWatch
        # Logs may use it for log groups of this lab's stacks, nothing else.
        prefix = construct_id.rsplit("-", 1)[0]
        log_group_arn = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:"
        lab_log_groups = [f"{log_group_arn}{prefix}-*", f"{log_group_arn}/aws/sagemaker/Endpoints/{prefix}-*"]
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsForLabLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=["*"],  # in a key policy "*" is this key
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": lab_log_groups}},
            )
        )

        # Versioned so an overwrite or delete can be undone; the old versions expire after a
        # few days, and auto-delete removes every version at `cdk destroy`.
        keep_old_versions = s3.LifecycleRule(noncurrent_version_expiration=Duration.days(props.noncurrent_version_days))
        # S3 server access logs cannot be delivered to an SSE-KMS bucket, hence SSE-S3 here.
        access_logs = s3.Bucket(
            self,
            "AccessLogBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(props.access_log_expiration_days)), keep_old_versions],
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        checkov.accept(
            access_logs.node.default_child,
            "CKV_AWS_18",
            "this is the access-log destination: logging it into itself would loop",
        )
        self.bucket = s3.Bucket(
            self,
            "LabBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="lab-bucket/",
            versioned=True,
            lifecycle_rules=[keep_old_versions],
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )

        log_group = logs.LogGroup(
            self,
            "FirehoseLogs",
            encryption_key=self.key,
            retention=props.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        log_stream = logs.LogStream(
            self,
            "FirehoseS3DeliveryLogs",
            log_group=log_group,
            log_stream_name="S3Delivery",
            removal_policy=RemovalPolicy.DESTROY,
        )

        role, delivery_policy = service_role(
            self,
            "FirehoseRole",
            "FirehoseDeliveryPolicy",
            service="firehose.amazonaws.com",
            description="Firehose writes the transaction stream into the lab bucket's raw prefixes",
            statements=_firehose_statements(self.bucket, self.key, log_group),
        )
        Validations.of(delivery_policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{_logical(self.bucket)}.Arn>/{RAW_PREFIX}*]",
                reason="Firehose names objects itself (date path + random suffix) under this prefix only.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{_logical(self.bucket)}.Arn>/{RAW_ERRORS_PREFIX}*]",
                reason="Firehose writes failed records under this error prefix only, with names it generates.",
            ),
        )

        self.delivery_stream = firehose.CfnDeliveryStream(
            self,
            "TransactionStream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="CUSTOMER_MANAGED_CMK", key_arn=self.key.key_arn
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                # A static prefix: Firehose appends the UTC "YYYY/MM/DD/HH/" partition itself.
                prefix=RAW_PREFIX,
                error_output_prefix=RAW_ERRORS_PREFIX,
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    size_in_m_bs=props.firehose_buffer_mib,
                    interval_in_seconds=props.firehose_buffer_seconds,
                ),
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=self.key.key_arn
                    )
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )
        # The role's policy must exist before Firehose validates that it can write.
        self.delivery_stream.node.add_dependency(delivery_policy)
        self.delivery_stream.apply_removal_policy(RemovalPolicy.DESTROY)

        # Named exports: the ML platform stack imports these, and cdk-nag findings on its
        # prefix-scoped policies then carry a stable name a reviewer can read.
        self.bucket_arn_export = f"{self.stack_name}-LabBucketArn"
        self.key_arn_export = f"{self.stack_name}-KeyArn"
        CfnOutput(self, "LabBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "LabBucketArn", value=self.bucket.bucket_arn, export_name=self.bucket_arn_export)
        CfnOutput(self, "KeyArn", value=self.key.key_arn, export_name=self.key_arn_export)
        CfnOutput(self, "DeliveryStreamName", value=self.delivery_stream.ref)
        CfnOutput(self, "RawPrefix", value=RAW_PREFIX)


def _firehose_statements(bucket: s3.IBucket, key: kms.IKey, log_group: logs.ILogGroup) -> list[iam.PolicyStatement]:
    """Least privilege for S3 delivery: the two raw prefixes, this key via S3, one log group."""
    return [
        iam.PolicyStatement(
            actions=["s3:AbortMultipartUpload", "s3:PutObject"],
            resources=[bucket.arn_for_objects(f"{RAW_PREFIX}*"), bucket.arn_for_objects(f"{RAW_ERRORS_PREFIX}*")],
        ),
        iam.PolicyStatement(
            actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            resources=[bucket.bucket_arn],
        ),
        iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
        ),
        iam.PolicyStatement(actions=["logs:PutLogEvents"], resources=[log_group.log_group_arn]),
    ]


def _logical(construct) -> str:
    """Logical ID of a construct's CloudFormation resource, as cdk-nag names it in findings."""
    return Stack.of(construct).get_logical_id(construct.node.default_child)
