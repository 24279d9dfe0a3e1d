"""Monitoring: scheduled data-quality drift checks of the endpoint's captured traffic.

Two ways, chosen with fraudlab:driftMonitor:
- "kit" (default, any account): EventBridge Scheduler starts the kit's drift job
  (processing/drift_monitor.py, shipped as a CDK asset) as a SageMaker Processing job
  in the isolated VPC; it writes Model-Monitor-shaped reports and publishes metrics.
- "modelMonitor" (accounts that still have SageMaker Model Monitor): a data-quality job
  definition and monitoring schedule running AWS's analyzer image on the same baseline.
Either way an alarm on the results notifies the alerts topic, and an EventBridge rule
starts the training pipeline (MLPlatform stack) when it goes to ALARM: drift -> retrain ->
gate -> register, the new model waiting for a person's approval.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.endpoint_stack import CAPTURE_PREFIX, VARIANT
from stacks.images import MODEL_MONITOR, XGBOOST, image_map
from stacks.ml_platform_stack import METRICS_NAMESPACE
from stacks.pipeline_definition import DRIFT_ALARM_DATA_VERSION
from stacks.service_role import service_role

MONITOR_CODE = Path(__file__).resolve().parent.parent / "processing" / "drift_monitor.py"
PROCESSING = "/opt/ml/processing"
BASELINE_PREFIX = "monitoring/baseline/"
REPORTS_PREFIX = "monitoring/reports/"
MODEL_MONITOR_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
ALARM_MAX_METRICS = 10  # a metric-math alarm takes at most 10 metrics




CAPTURE_SETTLE_MINUTES = 15


def model_monitor_schedule(hours: int) -> str:
    """Model Monitor's schedule for every `hours` hours (1-24).

    Model Monitor accepts only `cron(0 * ? * * *)` (hourly), daily, or
    `cron(0 [00-23]/[01-24] ? * * *)`: a start hour and a step, never `*/N`."""
    if not 1 <= hours <= 24:
        raise ValueError(f"drift schedule of {hours} hours: choose 1-24")
    return "cron(0 * ? * * *)" if hours == 1 else f"cron(0 0/{hours} ? * * *)"

@dataclass(frozen=True)
class MonitoringProps:
    mode: str  # "kit" | "modelMonitor"
    schedule_hours: int
    drift_threshold: float
    instance_type: str
    stack_prefix: str
    feature_count: int  # columns the endpoint takes, for Model Monitor's _c0.._cN metric names
    role_arn_export: str
    bucket_arn_export: str
    key_arn_export: str
    alerts_topic_export: str
    endpoint_name_export: str
    pipeline_arn_export: str
    subnet_ids: list[str]
    security_group_id: str


class MonitoringStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, props: MonitoringProps, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.props = props
        self.role_arn = Fn.import_value(props.role_arn_export)
        self.key_arn = Fn.import_value(props.key_arn_export)
        self.bucket_name = Fn.select(5, Fn.split(":", Fn.import_value(props.bucket_arn_export)))
        self.endpoint_name = Fn.import_value(props.endpoint_name_export)
        self.schedule_name = f"{props.stack_prefix}-DriftMonitor"
        self.reports_uri = Fn.join("", ["s3://", self.bucket_name, f"/{REPORTS_PREFIX}", self.endpoint_name, "/"])
        topic = sns.Topic.from_topic_arn(self, "Alerts", Fn.import_value(props.alerts_topic_export))

        if props.mode == "kit":
            alarm = self._kit_monitor()
        else:
            alarm = self._model_monitor()
        notify = cloudwatch_actions.SnsAction(topic)
        alarm.add_alarm_action(notify)
        alarm.add_ok_action(notify)
        rule = self._retrain_on_drift(alarm, Fn.import_value(props.pipeline_arn_export))

        CfnOutput(self, "MonitorMode", value=props.mode)
        CfnOutput(self, "ScheduleName", value=self.schedule_name)
        # Prefixes in the lab bucket (outputs made of imports are a lint smell: W6001).
        CfnOutput(self, "BaselinePrefix", value=BASELINE_PREFIX)
        CfnOutput(self, "ReportsPrefix", value=REPORTS_PREFIX)
        CfnOutput(self, "DriftAlarmName", value=alarm.alarm_name)
        CfnOutput(self, "DriftThreshold", value=str(props.drift_threshold))
        CfnOutput(self, "RetrainRuleName", value=rule.ref)

    def _retrain_on_drift(self, alarm: cloudwatch.Alarm, pipeline_arn: str) -> events.CfnRule:
        """The drift alarm going to ALARM starts the training pipeline (EventBridge delivers
        CloudWatch's alarm state changes to the default bus). The run passes DataVersion
        "drift-alarm": its features are computed afresh unless another alarm-started run
        cached them within the hour, which the alarm (back to OK first) cannot do."""
        role, _ = service_role(
            self, "RetrainRole", "RetrainPolicy", service="events.amazonaws.com",
            description="FraudLab: EventBridge starts the training pipeline when the drift alarm fires",
            statements=[iam.PolicyStatement(actions=["sagemaker:StartPipelineExecution"], resources=[pipeline_arn])],
        )
        parameter = events.CfnRule.SageMakerPipelineParameterProperty(name="DataVersion", value=DRIFT_ALARM_DATA_VERSION)
        return events.CfnRule(
            self,
            "RetrainOnDrift",
            description="FraudLab: retrain (the training pipeline) when the drift alarm fires",
            state="ENABLED",
            event_pattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [alarm.alarm_arn],
                "detail": {"state": {"value": ["ALARM"]}},
            },
            targets=[events.CfnRule.TargetProperty(
                id="TrainingPipeline", arn=pipeline_arn, role_arn=role.role_arn,
                sage_maker_pipeline_parameters=events.CfnRule.SageMakerPipelineParametersProperty(pipeline_parameter_list=[parameter]),
            )],
        )

    # --- the kit's own monitor --------------------------------------------------------------

    def _kit_monitor(self) -> cloudwatch.Alarm:
        props = self.props
        code = s3_assets.Asset(self, "MonitorCode", path=str(MONITOR_CODE))
        code_file = Path(code.s3_object_key).name
        monitoring_role = iam.Role.from_role_arn(self, "MonitoringRole", self.role_arn)
        # The job reads its code from the CDK assets bucket: exactly that object.
        iam.Policy(
            self,
            "ReadMonitorCode",
            roles=[monitoring_role],
            statements=[
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[code.bucket.arn_for_objects(code.s3_object_key)]),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[code.bucket.bucket_arn],
                    conditions={"StringEquals": {"s3:prefix": code.s3_object_key}},
                ),
            ],
        )

        job_prefix = f"{props.stack_prefix.lower()}-drift"
        image = image_map(self, "KitImage", *XGBOOST).find_in_map(Aws.REGION, "uri")
        request = {
            "ProcessingJobName": f"{job_prefix}-{scheduler.ContextAttribute.execution_id}",
            "RoleArn": self.role_arn,
            "AppSpecification": {
                "ImageUri": image,
                "ContainerEntrypoint": ["python3", f"{PROCESSING}/input/code/{code_file}"],
                "ContainerArguments": [
                    "--mode", "monitor",
                    "--baseline", f"{PROCESSING}/input/baseline",
                    "--output", f"{PROCESSING}/resultdata",
                    "--bucket", self.bucket_name,
                    "--capture-prefix", Fn.join("", [f"{CAPTURE_PREFIX}/", self.endpoint_name, f"/{VARIANT}"]),
                    "--window-end", scheduler.ContextAttribute.scheduled_time,
                    "--window-hours", str(props.schedule_hours),
                    # capture files land minutes after their requests: check whole hours that have settled
                    "--settle-minutes", str(CAPTURE_SETTLE_MINUTES),
                    "--endpoint", self.endpoint_name,
                    "--schedule", self.schedule_name,
                    "--namespace", METRICS_NAMESPACE,
                    "--region", Aws.REGION,
                ],
            },
            "ProcessingInputs": [
                _s3_input("code", code.s3_object_url, f"{PROCESSING}/input/code"),
                _s3_input("baseline", Fn.join("", ["s3://", self.bucket_name, f"/{BASELINE_PREFIX}"]), f"{PROCESSING}/input/baseline"),
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": self.key_arn,
                "Outputs": [{"OutputName": "reports", "S3Output": {"S3Uri": self.reports_uri, "LocalPath": f"{PROCESSING}/resultdata", "S3UploadMode": "EndOfJob"}}],
            },
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": props.instance_type, "VolumeSizeInGB": 10, "VolumeKmsKeyId": self.key_arn}
            },
            # No network isolation: the job reads capture from S3 (gateway endpoint) and
            # publishes metrics (CloudWatch interface endpoint); the VPC has no other way out.
            "NetworkConfig": {
                "EnableNetworkIsolation": False,
                "VpcConfig": {"SecurityGroupIds": [props.security_group_id], "Subnets": props.subnet_ids},
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
            "Tags": [{"Key": "project", "Value": "fraudlab"}],
        }

        partition, region, account = Aws.PARTITION, Aws.REGION, Aws.ACCOUNT_ID
        jobs = f"arn:{partition}:sagemaker:{region}:{account}:processing-job/{job_prefix}-*"
        role, policy = service_role(
            self,
            "SchedulerRole",
            "SchedulerPolicy",
            service="scheduler.amazonaws.com",
            description="FraudLab drift schedule: starts the drift Processing job",
            statements=[
                iam.PolicyStatement(actions=["sagemaker:CreateProcessingJob", "sagemaker:AddTags"], resources=[jobs]),
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[self.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ],
        )
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:processing-job/{job_prefix}-*]",
                reason="Each run's job name ends in the scheduler's execution ID, unknown in advance; the prefix limits it to drift jobs.",
            )
        )
        self.schedule = scheduler.CfnSchedule(
            self,
            "DriftSchedule",
            name=self.schedule_name,
            description="FraudLab: data-quality drift check of the endpoint's captured traffic",
            schedule_expression=f"rate({props.schedule_hours} hour{'s' if props.schedule_hours > 1 else ''})",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn="arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob",
                role_arn=role.role_arn,
                input=self.to_json_string(request),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=2, maximum_event_age_in_seconds=3600),
            ),
        )
        self.schedule.apply_removal_policy(RemovalPolicy.DESTROY)
        CfnOutput(self, "MonitorCodeUri", value=code.s3_object_url)
        CfnOutput(self, "MonitorImageUri", value=image)
        CfnOutput(self, "MetricsNamespace", value=METRICS_NAMESPACE)

        metric = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name="constraint_violations",
            dimensions_map={"Endpoint": self.endpoint_name, "MonitoringSchedule": self.schedule_name},
            statistic="Maximum",
            # One datapoint per run, so a short period costs nothing; it lets a run's verdict
            # replace the previous run's within a minute (a rerun of step 08 waits that long).
            period=Duration.minutes(1),
        )
        return cloudwatch.Alarm(
            self,
            "DriftViolations",
            alarm_description="FraudLab drift monitor found constraint violations (see the run's constraint_violations.json)",
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # One datapoint per run: between runs the alarm keeps what the last run said.
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )

    # --- SageMaker Model Monitor ------------------------------------------------------------

    def _model_monitor(self) -> cloudwatch.Alarm:
        props = self.props
        baseline = Fn.join("", ["s3://", self.bucket_name, f"/{BASELINE_PREFIX}model-monitor/"])
        image = image_map(self, "ModelMonitorImage", *MODEL_MONITOR).find_in_map(Aws.REGION, "uri")
        definition = sagemaker.CfnDataQualityJobDefinition(
            self,
            "DataQualityJob",
            job_definition_name=f"{props.stack_prefix.lower()}-data-quality",
            role_arn=self.role_arn,
            data_quality_app_specification=sagemaker.CfnDataQualityJobDefinition.DataQualityAppSpecificationProperty(image_uri=image),
            data_quality_baseline_config=sagemaker.CfnDataQualityJobDefinition.DataQualityBaselineConfigProperty(
                constraints_resource=sagemaker.CfnDataQualityJobDefinition.ConstraintsResourceProperty(s3_uri=Fn.join("", [baseline, "constraints.json"])),
                statistics_resource=sagemaker.CfnDataQualityJobDefinition.StatisticsResourceProperty(s3_uri=Fn.join("", [baseline, "statistics.json"])),
            ),
            data_quality_job_input=sagemaker.CfnDataQualityJobDefinition.DataQualityJobInputProperty(
                endpoint_input=sagemaker.CfnDataQualityJobDefinition.EndpointInputProperty(
                    endpoint_name=self.endpoint_name,
                    local_path=f"{PROCESSING}/input/endpoint",
                    s3_input_mode="File",
                    s3_data_distribution_type="FullyReplicated",
                )
            ),
            data_quality_job_output_config=sagemaker.CfnDataQualityJobDefinition.MonitoringOutputConfigProperty(
                kms_key_id=self.key_arn,
                monitoring_outputs=[
                    sagemaker.CfnDataQualityJobDefinition.MonitoringOutputProperty(
                        s3_output=sagemaker.CfnDataQualityJobDefinition.S3OutputProperty(
                            local_path=f"{PROCESSING}/output", s3_uri=self.reports_uri, s3_upload_mode="EndOfJob"
                        )
                    )
                ],
            ),
            job_resources=sagemaker.CfnDataQualityJobDefinition.MonitoringResourcesProperty(
                cluster_config=sagemaker.CfnDataQualityJobDefinition.ClusterConfigProperty(
                    instance_count=1, instance_type=props.instance_type, volume_size_in_gb=20, volume_kms_key_id=self.key_arn
                )
            ),
            network_config=sagemaker.CfnDataQualityJobDefinition.NetworkConfigProperty(
                enable_inter_container_traffic_encryption=True,  # between the job's instances, if it ever has several
                enable_network_isolation=True,
                vpc_config=sagemaker.CfnDataQualityJobDefinition.VpcConfigProperty(
                    security_group_ids=[props.security_group_id], subnets=props.subnet_ids
                ),
            ),
            stopping_condition=sagemaker.CfnDataQualityJobDefinition.StoppingConditionProperty(max_runtime_in_seconds=1800),
        )
        schedule = sagemaker.CfnMonitoringSchedule(
            self,
            "MonitoringSchedule",
            monitoring_schedule_name=self.schedule_name,
            monitoring_schedule_config=sagemaker.CfnMonitoringSchedule.MonitoringScheduleConfigProperty(
                monitoring_job_definition_name=definition.job_definition_name,
                monitoring_type="DataQuality",
                schedule_config=sagemaker.CfnMonitoringSchedule.ScheduleConfigProperty(
                    schedule_expression=model_monitor_schedule(props.schedule_hours)
                ),
            ),
        )
        schedule.node.add_dependency(definition)  # referenced by name, so order it explicitly
        for resource in (definition, schedule):
            resource.apply_removal_policy(RemovalPolicy.DESTROY)
        metrics_policy = iam.Policy(
            self,
            "PublishModelMonitorMetrics",
            roles=[iam.Role.from_role_arn(self, "MonitoringRole", self.role_arn)],
            statements=[
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": MODEL_MONITOR_NAMESPACE}},
                )
            ],
        )
        Validations.of(metrics_policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason=f"cloudwatch:PutMetricData has no resource-level permissions; the condition limits it to {MODEL_MONITOR_NAMESPACE}.",
            )
        )
        CfnOutput(self, "MonitorImageUri", value=image)
        CfnOutput(self, "MetricsNamespace", value=MODEL_MONITOR_NAMESPACE)

        # Model Monitor publishes one drift metric per column (named _c0.._cN for CSV) and
        # no violation count; an alarm takes at most 10 metrics, so it watches the first 10
        # columns (the payment itself: amount, time, category). The report covers all.
        dimensions = {"Endpoint": self.endpoint_name, "MonitoringSchedule": self.schedule_name}
        metrics = {
            f"c{i}": cloudwatch.Metric(
                namespace=MODEL_MONITOR_NAMESPACE, metric_name=f"feature_baseline_drift__c{i}",
                dimensions_map=dimensions, statistic="Maximum", period=Duration.hours(1),
            )
            for i in range(min(ALARM_MAX_METRICS, props.feature_count))
        }
        return cloudwatch.Alarm(
            self,
            "DriftViolations",
            alarm_description=f"Model Monitor drift distance above {props.drift_threshold} on a watched feature",
            metric=cloudwatch.MathExpression(expression=f"MAX([{', '.join(metrics)}])", using_metrics=metrics, period=Duration.hours(1)),
            threshold=props.drift_threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )


def _s3_input(name: str, uri: str, local_path: str) -> dict:
    return {
        "InputName": name,
        "S3Input": {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
    }
