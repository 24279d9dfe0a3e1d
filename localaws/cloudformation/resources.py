"""CloudFormation resource types moto's CloudFormation skips or mishandles, made real.

moto silently skips types it has no model for, so a stack reports CREATE_COMPLETE while
its Firehose stream never exists. Each class here creates the resource in moto's own
service backend from the template's properties (moto has already resolved Ref, GetAtt,
ImportValue ...), so the lab then finds it through the ordinary service APIs.

moto discovers models as direct subclasses of CloudFormationModel, hence `register()`.
"""
from __future__ import annotations

import json
from typing import Any

from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.cloudformation import parsing
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.firehose.models import firehose_backends
from moto.kms.models import Key as MotoKmsKey
from moto.logs.models import logs_backends
from moto.s3.models import FakeBucket, s3_backends
from moto.sagemaker.models import sagemaker_backends
from moto.scheduler.models import scheduler_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from localaws.sagemaker.monitoring import STORE
from localaws.sagemaker.pipeline_definition import validate


class _LocalModel(CloudFormationModel):
    """Shared plumbing: a resource that remembers its physical id and deletes itself.

    A subclass names its resource type (CFN_TYPE), the template property that names the
    resource if it has one (NAME_PROPERTY), and the GetAtt attributes it has (ATTRIBUTES)."""

    CFN_TYPE = CloudFormationModel.cloudformation_type()  # moto's placeholder: the base is no type
    NAME_PROPERTY = ""
    ATTRIBUTES: tuple[str, ...] = ()
    physical_resource_id: str

    # moto calls these on the class (moto/cloudformation/parsing.py, and the map register() makes).
    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.CFN_TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return getattr(self, attribute_name)

    def is_created(self) -> bool:
        return True

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)


class DeliveryStream(_LocalModel):
    """AWS::KinesisFirehose::DeliveryStream, created in moto's Firehose backend."""

    CFN_TYPE = "AWS::KinesisFirehose::DeliveryStream"
    NAME_PROPERTY = "DeliveryStreamName"
    ATTRIBUTES = ("Arn",)

    def __init__(self, name: str, arn: str) -> None:
        self.physical_resource_id = name
        self.Arn = arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        backend = firehose_backends[account_id][region_name]
        arn = backend.create_delivery_stream(
            region=region_name,
            delivery_stream_name=resource_name,
            delivery_stream_type=props.get("DeliveryStreamType", "DirectPut"),
            kinesis_stream_source_configuration=props.get("KinesisStreamSourceConfiguration"),
            delivery_stream_encryption_configuration_input=props.get("DeliveryStreamEncryptionConfigurationInput"),
            s3_destination_configuration=props.get("S3DestinationConfiguration"),
            extended_s3_destination_configuration=props.get("ExtendedS3DestinationConfiguration"),
            redshift_destination_configuration=props.get("RedshiftDestinationConfiguration"),
            elasticsearch_destination_configuration=props.get("ElasticsearchDestinationConfiguration"),
            splunk_destination_configuration=props.get("SplunkDestinationConfiguration"),
            http_endpoint_destination_configuration=props.get("HttpEndpointDestinationConfiguration"),
            snowflake_destination_configuration=props.get("SnowflakeDestinationConfiguration"),
            iceberg_destination_configuration=props.get("IcebergDestinationConfiguration"),
            tags=props.get("Tags", []),
        )
        return cls(resource_name, arn)

    def delete(self, account_id: str, region_name: str) -> None:
        firehose_backends[account_id][region_name].delete_delivery_stream(self.physical_resource_id)


class Bucket(FakeBucket):
    """AWS::S3::Bucket: moto's, plus the versioning its CloudFormation ignores (deletes then
    leave versions and delete markers, as on AWS, which destroy must remove)."""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        bucket = super().create_from_cloudformation_json(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        versioning = cloudformation_json.get("Properties", {}).get("VersioningConfiguration", {})
        if versioning.get("Status") == "Enabled":
            s3_backends[account_id]["global"].put_bucket_versioning(bucket.name, "Enabled")
        return bucket


class BucketPolicy(_LocalModel):
    """AWS::S3::BucketPolicy, attached in moto's S3 backend (which enforces basic policies)."""

    CFN_TYPE = "AWS::S3::BucketPolicy"

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.physical_resource_id = bucket

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        policy = json.dumps(props["PolicyDocument"]).encode()
        s3_backends[account_id]["global"].put_bucket_policy(props["Bucket"], policy)
        return cls(props["Bucket"])

    def delete(self, account_id: str, region_name: str) -> None:
        backend = s3_backends[account_id]["global"]
        if self.bucket in backend.buckets:  # gone already if the bucket was deleted first
            backend.delete_bucket_policy(self.bucket)


class LogStream(_LocalModel):
    """AWS::Logs::LogStream, created in moto's CloudWatch Logs backend."""

    CFN_TYPE = "AWS::Logs::LogStream"
    NAME_PROPERTY = "LogStreamName"

    def __init__(self, group: str, name: str) -> None:
        self.group = group
        self.physical_resource_id = name

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        group = cloudformation_json["Properties"]["LogGroupName"]
        logs_backends[account_id][region_name].create_log_stream(group, resource_name)
        return cls(group, resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = logs_backends[account_id][region_name]
        if self.group in backend.groups:  # gone already if the group was deleted first
            backend.delete_log_stream(self.group, self.physical_resource_id)


class ModelPackageGroup(_LocalModel):
    """AWS::SageMaker::ModelPackageGroup, created in moto's SageMaker backend (Ref is the ARN)."""

    CFN_TYPE = "AWS::SageMaker::ModelPackageGroup"
    NAME_PROPERTY = "ModelPackageGroupName"
    ATTRIBUTES = ("ModelPackageGroupArn", "CreationTime", "ModelPackageGroupStatus")

    def __init__(self, name: str, arn: str) -> None:
        self.name = name
        self.physical_resource_id = arn
        self.ModelPackageGroupArn = arn
        self.CreationTime = ""
        self.ModelPackageGroupStatus = "Completed"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        arn = sagemaker_backends[account_id][region_name].create_model_package_group(
            model_package_group_name=resource_name,
            model_package_group_description=props.get("ModelPackageGroupDescription", ""),
            tags=props.get("Tags"),
        )
        return cls(resource_name, arn)

    def delete(self, account_id: str, region_name: str) -> None:
        sagemaker_backends[account_id][region_name].delete_model_package_group(self.name)  # see moto_fixes


class Pipeline(_LocalModel):
    """AWS::SageMaker::Pipeline, created in moto's SageMaker backend after the definition
    passes the checks CreatePipeline applies (sagemaker/pipeline_definition.py); Ref is the name."""

    CFN_TYPE = "AWS::SageMaker::Pipeline"
    NAME_PROPERTY = "PipelineName"
    ATTRIBUTES = ("PipelineName",)

    def __init__(self, name: str) -> None:
        self.physical_resource_id = self.PipelineName = name

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        body = p["PipelineDefinition"].get("PipelineDefinitionBody")
        if body is None:
            raise ValueError("the local AWS takes PipelineDefinitionBody (not an S3 location) for AWS::SageMaker::Pipeline")
        validate(body)  # DefinitionError fails the resource, as CloudFormation would
        name = p.get("PipelineName", resource_name)
        sagemaker_backends[account_id][region_name].create_pipeline(
            pipeline_name=name, pipeline_display_name=p.get("PipelineDisplayName", name), pipeline_definition=body,
            pipeline_definition_s3_location=None, pipeline_description=p.get("PipelineDescription", ""), role_arn=p["RoleArn"],
            tags=p.get("Tags", []), parallelism_configuration=p.get("ParallelismConfiguration"),
        )
        return cls(name)

    def delete(self, account_id: str, region_name: str) -> None:
        sagemaker_backends[account_id][region_name].delete_pipeline(self.physical_resource_id)


class Alarm(_LocalModel):
    """AWS::CloudWatch::Alarm (single-metric), created in moto's CloudWatch backend."""

    CFN_TYPE = "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = "AlarmName"
    ATTRIBUTES = ("Arn",)

    def __init__(self, name: str, arn: str) -> None:
        self.physical_resource_id, self.Arn = name, arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            # Metric-math alarms (Metrics) are stored without their queries: not evaluated offline.
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p.get("Period", 60)),
            threshold=float(p["Threshold"]),
            statistic=p.get("Statistic"),
            extended_statistic=p.get("ExtendedStatistic"),
            description=p.get("AlarmDescription", ""),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions", []),
            datapoints_to_alarm=p.get("DatapointsToAlarm"),
            treat_missing_data=p.get("TreatMissingData"),
        )
        return cls(resource_name, alarm.alarm_arn)

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_resource_id])


class ScalableTarget(_LocalModel):
    """AWS::ApplicationAutoScaling::ScalableTarget; Ref is "resourceId|dimension|namespace" as on AWS."""

    CFN_TYPE = "AWS::ApplicationAutoScaling::ScalableTarget"

    def __init__(self, namespace: str, resource_id: str, dimension: str) -> None:
        self.namespace, self.resource_id, self.dimension = namespace, resource_id, dimension
        self.physical_resource_id = f"{resource_id}|{dimension}|{namespace}"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        applicationautoscaling_backends[account_id][region_name].register_scalable_target(
            p["ServiceNamespace"], p["ResourceId"], p["ScalableDimension"], int(p["MinCapacity"]), int(p["MaxCapacity"]),
            p.get("RoleARN", ""), p.get("SuspendedState"),
        )
        return cls(p["ServiceNamespace"], p["ResourceId"], p["ScalableDimension"])

    def delete(self, account_id: str, region_name: str) -> None:
        applicationautoscaling_backends[account_id][region_name].deregister_scalable_target(self.namespace, self.resource_id, self.dimension)


class ScalingPolicy(_LocalModel):
    """AWS::ApplicationAutoScaling::ScalingPolicy on a target named by ScalingTargetId."""

    CFN_TYPE = "AWS::ApplicationAutoScaling::ScalingPolicy"

    def __init__(self, name: str, target: tuple[str, str, str]) -> None:
        self.physical_resource_id, self.target = name, target

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        resource_id, dimension, namespace = p["ScalingTargetId"].split("|")
        policy_type = p["PolicyType"]
        body = p.get("TargetTrackingScalingPolicyConfiguration") if policy_type == "TargetTrackingScaling" else p.get("StepScalingPolicyConfiguration")
        name = p.get("PolicyName", resource_name)
        applicationautoscaling_backends[account_id][region_name].put_scaling_policy(name, namespace, resource_id, dimension, body, policy_type)
        return cls(name, (namespace, resource_id, dimension))

    def delete(self, account_id: str, region_name: str) -> None:
        namespace, resource_id, dimension = self.target
        applicationautoscaling_backends[account_id][region_name].delete_scaling_policy(self.physical_resource_id, namespace, resource_id, dimension)


class KmsKey(_LocalModel):
    """AWS::KMS::Key: moto's own model fails on template tags ({Key, Value} vs {TagKey, TagValue})."""

    CFN_TYPE = "AWS::KMS::Key"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return MotoKmsKey.has_cfn_attr(attr)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = dict(cloudformation_json["Properties"])
        props["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])]
        # moto keeps the template's policy object; its own API expects the JSON text.
        if isinstance(props.get("KeyPolicy"), dict):
            props["KeyPolicy"] = json.dumps(props["KeyPolicy"])
        return MotoKmsKey.create_from_cloudformation_json(
            resource_name, {**cloudformation_json, "Properties": props}, account_id, region_name, **kwargs
        )


class TopicPolicy(_LocalModel):
    """AWS::SNS::TopicPolicy: the policy set on each topic in moto's SNS backend."""

    CFN_TYPE = "AWS::SNS::TopicPolicy"

    def __init__(self, topics: list[str]) -> None:
        self.topics = topics
        self.physical_resource_id = ",".join(topics)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        for topic in props["Topics"]:
            sns_backends[account_id][region_name].set_topic_attribute(topic, "Policy", json.dumps(props["PolicyDocument"]))
        return cls(props["Topics"])

    def delete(self, account_id: str, region_name: str) -> None:
        pass  # the policy goes with its topic


class Subscription(_LocalModel):
    """AWS::SNS::Subscription: subscribed in moto's SNS backend (which delivers to SQS)."""

    CFN_TYPE = "AWS::SNS::Subscription"

    def __init__(self, arn: str) -> None:
        self.physical_resource_id = arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        return cls(sns_backends[account_id][region_name].subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"]).arn)

    def delete(self, account_id: str, region_name: str) -> None:
        sns_backends[account_id][region_name].unsubscribe(self.physical_resource_id)


class QueuePolicy(_LocalModel):
    """AWS::SQS::QueuePolicy: the Policy attribute of each queue in moto's SQS backend."""

    CFN_TYPE = "AWS::SQS::QueuePolicy"

    def __init__(self, queues: list[str]) -> None:
        self.physical_resource_id = ",".join(queues)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        for url in props["Queues"]:
            sqs_backends[account_id][region_name].set_queue_attributes(url.rsplit("/", 1)[-1], {"Policy": json.dumps(props["PolicyDocument"])})
        return cls(props["Queues"])

    def delete(self, account_id: str, region_name: str) -> None:
        pass  # the policy goes with its queue


class Schedule(_LocalModel):
    """AWS::Scheduler::Schedule in moto's EventBridge Scheduler backend (which never fires it)."""

    CFN_TYPE = "AWS::Scheduler::Schedule"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = ("Arn",)

    def __init__(self, name: str, group: str, arn: str) -> None:
        self.physical_resource_id, self.group, self.Arn = name, group, arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        group = p.get("GroupName", "default")
        schedule = scheduler_backends[account_id][region_name].create_schedule(
            description=p.get("Description"), end_date=p.get("EndDate"), flexible_time_window=p["FlexibleTimeWindow"],
            group_name=group, kms_key_arn=p.get("KmsKeyArn"), name=resource_name, schedule_expression=p["ScheduleExpression"],
            schedule_expression_timezone=p.get("ScheduleExpressionTimezone"), start_date=p.get("StartDate"),
            state=p.get("State"), target=p["Target"], action_after_completion=None,
        )
        return cls(resource_name, group, schedule.arn)

    def delete(self, account_id: str, region_name: str) -> None:
        scheduler_backends[account_id][region_name].delete_schedule(self.group, self.physical_resource_id)


class DataQualityJobDefinition(_LocalModel):
    """AWS::SageMaker::DataQualityJobDefinition, kept by the local Model Monitor API (Ref: the ARN)."""

    CFN_TYPE = "AWS::SageMaker::DataQualityJobDefinition"
    NAME_PROPERTY = "JobDefinitionName"
    ATTRIBUTES = ("JobDefinitionArn", "JobDefinitionName", "CreationTime")

    def __init__(self, name: str, arn: str) -> None:
        self.physical_resource_id = self.JobDefinitionArn = arn
        self.JobDefinitionName, self.CreationTime = name, ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        # The template's properties are the API request: validated against its botocore shape.
        request = {**cloudformation_json["Properties"], "JobDefinitionName": resource_name}
        request.pop("EndpointName", None)
        reply = STORE.handle("CreateDataQualityJobDefinition", request, account_id, region_name)
        return cls(resource_name, reply["JobDefinitionArn"])

    def delete(self, account_id: str, region_name: str) -> None:
        STORE.handle("DeleteDataQualityJobDefinition", {"JobDefinitionName": self.JobDefinitionName}, account_id, region_name)


class MonitoringSchedule(_LocalModel):
    """AWS::SageMaker::MonitoringSchedule, kept by the local Model Monitor API (Ref: the ARN)."""

    CFN_TYPE = "AWS::SageMaker::MonitoringSchedule"
    NAME_PROPERTY = "MonitoringScheduleName"
    ATTRIBUTES = ("MonitoringScheduleArn", "CreationTime", "LastModifiedTime")

    def __init__(self, name: str, arn: str) -> None:
        self.name, self.physical_resource_id, self.MonitoringScheduleArn = name, arn, arn
        self.CreationTime = self.LastModifiedTime = ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        request = {"MonitoringScheduleName": p.get("MonitoringScheduleName", resource_name), "MonitoringScheduleConfig": p["MonitoringScheduleConfig"]}
        if p.get("Tags"):
            request["Tags"] = p["Tags"]
        reply = STORE.handle("CreateMonitoringSchedule", request, account_id, region_name)
        return cls(request["MonitoringScheduleName"], reply["MonitoringScheduleArn"])

    def delete(self, account_id: str, region_name: str) -> None:
        STORE.handle("DeleteMonitoringSchedule", {"MonitoringScheduleName": self.name}, account_id, region_name)


def register() -> None:
    """Make moto's CloudFormation use the classes above; for a type both know, ours wins."""
    native = [m for m in CloudFormationModel.__subclasses__() if m is not _LocalModel]
    by_type = {m.cloudformation_type(): m for m in native + _LocalModel.__subclasses__() + [Bucket]}
    # moto looks these up through module-level (cached) functions on every resource.
    parsing.get_model_map = lambda: by_type
    parsing.get_model_list = lambda: list(by_type.values())
    parsing.get_name_type_map = lambda: {t: m.cloudformation_name_type() for t, m in by_type.items()}


# Resource types the local AWS does not create, with the reason a reviewer can check.
NOT_EMULATED = {
    "Custom::S3AutoDeleteObjects": (
        "a Lambda that empties the bucket when the stack is deleted; the local AWS stores "
        "Lambda functions but cannot run them (no container runtime), and local-down "
        "discards the whole local AWS anyway"
    ),
    "Custom::VpcRestrictDefaultSG": (
        "a Lambda that strips the default security group's rules; it cannot run offline "
        "and the local VPC carries no traffic"
    ),
}
