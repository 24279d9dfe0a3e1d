"""Steps 02-04 as one SageMaker Pipeline: features -> training -> evaluation -> gate ->
register (or fail, saying why).

The definition is the JSON SageMaker Pipelines runs (Version 2020-12-01): each step's
Arguments are the Create* request of the job it starts, the same requests the numbered
steps send, with `Get` (a parameter, an execution variable or an earlier step's property),
`Std:Join` and `Std:JsonGet` (a value read from a step's property file) where a value is
known only at run time. Built here as plain data: the CDK app (ml_platform_stack.py) fills
in its resources, tests fill in literals and run it on the local AWS.

Caching: Features, Train and Evaluate reuse a Succeeded run of themselves from the last
hour when their cache key (SageMaker's: a Processing job's AppSpecification, Environment
and ProcessingInputs; a training job's AlgorithmSpecification, HyperParameters,
InputDataConfig ...) is unchanged. The key holds S3 URIs, not the data under them, so the
features step's Environment carries the DataVersion parameter: step 07 passes a
fingerprint of the landed data (new data, new key), a run the drift alarm starts
(monitoring_stack.py) passes DRIFT_ALARM_DATA_VERSION.
"""
from __future__ import annotations

from dataclasses import dataclass

from processing.features import LABEL_DELAY_DAYS
from processing.model_artifact import inference_specification
from processing.training import HYPERPARAMETERS

CONTAINER = "/opt/ml/processing"
CODE_PREFIX = "code/pipeline/"  # step 07 uploads the jobs' code here before each start
# The files the two Processing steps run (uploaded flat, as processing/ and inference/ hold them).
PROCESSING_CODE = ("feature_job.py", "validation.py", "labels.py", "features.py", "records.py", "training.py")
EVALUATION_CODE = ("evaluation_job.py", "evaluation.py", "metrics.py", "features.py", "model_artifact.py", "inference.py")
CACHE = {"Enabled": True, "ExpireAfter": "PT1H"}
DRIFT_ALARM_DATA_VERSION = "drift-alarm"


@dataclass(frozen=True)
class PipelineResources:
    """What the definition names: CDK tokens in the app, literals in tests."""

    bucket: str
    raw_prefix: str
    labels_prefix: str
    key_arn: str
    processing_role_arn: str
    training_role_arn: str
    evaluation_role_arn: str
    image_uri: str
    subnet_ids: list[str]
    security_group_id: str
    model_package_group_name: str


PARAMETERS = {
    # name: (type, default, what it is); InputData's default is the stream's prefix
    "InputData": ("String", None, "S3 prefix of the landed transactions"),
    "DataVersion": ("String", "unversioned", "what the landed data is (part of the features step's cache key)"),
    "ProcessingInstanceType": ("String", "ml.m5.xlarge", "instance type of the feature and evaluation jobs"),
    "TrainingInstanceType": ("String", "ml.m5.large", "instance type of the training job"),
    "ModelApprovalStatus": ("String", "PendingManualApproval", "status of a package that passes the gate"),
    "Margin": ("Float", 0.10, "PR-AUC the model must add over the amount rule to be registered"),
    "AlertsPerDay": ("Integer", 100, "cards investigators can review a day (the alert budget)"),
}


def get(path: str) -> dict:
    return {"Get": path}


def join(*values, on: str = "") -> dict:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def json_get(step: str, property_file: str, path: str) -> dict:
    return {"Std:JsonGet": {"PropertyFile": get(f"Steps.{step}.PropertyFiles.{property_file}"), "Path": path}}


def output_uri(step: str, output: str) -> dict:
    return get(f"Steps.{step}.ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri")


def pipeline_definition(r: PipelineResources) -> dict:
    execution = get("Execution.PipelineExecutionId")

    def run_prefix(kind: str) -> dict:
        """s3://bucket/<kind>/pipeline-<execution id>: this run's output of one kind."""
        return join(f"s3://{r.bucket}/{kind}/pipeline-", execution)

    parameters = [
        {"Name": name, "Type": kind, "DefaultValue": default if default is not None else f"s3://{r.bucket}/{r.raw_prefix}"}
        for name, (kind, default, _) in PARAMETERS.items()
    ]
    network = {
        "EnableNetworkIsolation": True,
        "VpcConfig": {"SecurityGroupIds": [r.security_group_id], "Subnets": list(r.subnet_ids)},
    }

    def processing(role_arn: str, script: str, arguments: list, inputs: dict, outputs: dict, environment: dict | None = None) -> dict:
        """A CreateProcessingJob request as lab_scripts/labkit/sagemaker.py's isolated_processing_job builds it."""
        return {
            "RoleArn": role_arn,
            "AppSpecification": {
                "ImageUri": r.image_uri,
                "ContainerEntrypoint": ["python3", f"{CONTAINER}/input/code/{script}"],
                "ContainerArguments": arguments,
            },
            **({"Environment": environment} if environment else {}),
            "ProcessingInputs": [
                {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": f"{CONTAINER}/input/{name}", "S3DataType": "S3Prefix",
                                                "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}
                for name, uri in {"code": f"s3://{r.bucket}/{CODE_PREFIX}", **inputs}.items()
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": r.key_arn,
                "Outputs": [
                    {"OutputName": name, "S3Output": {"S3Uri": uri, "LocalPath": f"{CONTAINER}/output/{name}", "S3UploadMode": "EndOfJob"}}
                    for name, uri in outputs.items()
                ],
            },
            "ProcessingResources": {"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": get("Parameters.ProcessingInstanceType"), "VolumeSizeInGB": 30, "VolumeKmsKeyId": r.key_arn,
            }},
            "NetworkConfig": network,
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        }

    features = {
        "Name": "Features",
        "Type": "Processing",
        "Description": "Step 02: validate, quarantine, build features, split by time",
        "CacheConfig": CACHE,
        "Arguments": processing(
            r.processing_role_arn, "feature_job.py",
            ["--raw", f"{CONTAINER}/input/raw", "--labels", f"{CONTAINER}/input/labels", "--label-delay-days", str(LABEL_DELAY_DAYS)],
            {"raw": get("Parameters.InputData"), "labels": f"s3://{r.bucket}/{r.labels_prefix}"},
            {"features": run_prefix("features"), "quarantine": run_prefix("quarantine")},
            environment={"FRAUDLAB_DATA_VERSION": get("Parameters.DataVersion")},
        ),
        "PropertyFiles": [{"PropertyFileName": "FeatureSchema", "OutputName": "features", "FilePath": "schema/feature_schema.json"}],
    }

    def channel(name: str) -> dict:
        return {
            "ChannelName": name,
            "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": join(output_uri("Features", "features"), f"/{name}/"),
                                            "S3DataDistributionType": "FullyReplicated"}},
        }

    train = {
        "Name": "Train",
        "Type": "Training",
        "Description": "Step 03: built-in XGBoost, early stopping on validation",
        "CacheConfig": CACHE,
        "Arguments": {
            "AlgorithmSpecification": {"TrainingImage": r.image_uri, "TrainingInputMode": "File"},
            "RoleArn": r.training_role_arn,
            "HyperParameters": {**HYPERPARAMETERS, "scale_pos_weight": json_get("Features", "FeatureSchema", "training.scale_pos_weight")},
            "InputDataConfig": [channel("train"), channel("validation")],
            "OutputDataConfig": {"S3OutputPath": f"s3://{r.bucket}/models/", "KmsKeyId": r.key_arn},
            "ResourceConfig": {"InstanceType": get("Parameters.TrainingInstanceType"), "InstanceCount": 1, "VolumeSizeInGB": 10, "VolumeKmsKeyId": r.key_arn},
            "VpcConfig": network["VpcConfig"],
            "EnableNetworkIsolation": True,
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    }
    evaluate = {
        "Name": "Evaluate",
        "Type": "Processing",
        "Description": "Step 04: test-period metrics, baselines, alert threshold, serving archive",
        "CacheConfig": CACHE,
        "Arguments": processing(
            r.evaluation_role_arn, "evaluation_job.py",
            ["--model", f"{CONTAINER}/input/model", "--features", f"{CONTAINER}/input/features",
             "--evaluation", f"{CONTAINER}/output/evaluation", "--serving", f"{CONTAINER}/output/serving",
             "--alerts-per-day", join(get("Parameters.AlertsPerDay"))],
            {"model": get("Steps.Train.ModelArtifacts.S3ModelArtifacts"), "features": output_uri("Features", "features")},
            {"evaluation": run_prefix("evaluation"), "serving": run_prefix("models")},
        ),
        "PropertyFiles": [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}],
    }
    lift = json_get("Evaluate", "EvaluationReport", "gate.pr_auc_lift")
    register = {
        "Name": "Register",
        "Type": "RegisterModel",
        "Description": "The model package, with its evaluation as model-quality metrics",
        "Arguments": {
            "ModelPackageGroupName": r.model_package_group_name,
            "ModelPackageDescription": join("XGBoost fraud model from pipeline execution ", execution),
            "InferenceSpecification": inference_specification(r.image_uri, join(output_uri("Evaluate", "serving"), "/model.tar.gz")),
            "ModelApprovalStatus": get("Parameters.ModelApprovalStatus"),
            "ModelMetrics": {"ModelQuality": {"Statistics": {
                "ContentType": "application/json", "S3Uri": join(output_uri("Evaluate", "evaluation"), "/evaluation.json"),
            }}},
            "CustomerMetadataProperties": {"pipeline_execution": execution, "pr_auc_lift": join(lift)},
        },
    }
    reject = {
        "Name": "GateFailed",
        "Type": "Fail",
        "Description": "Not registered: the model does not beat the amount rule by the margin",
        "Arguments": {"ErrorMessage": join("PR-AUC lift over the amount rule ", lift, " is below the margin ", get("Parameters.Margin"),
                                           ": not registered; see the Evaluate step's evaluation.json")},
    }
    gate = {
        "Name": "Gate",
        "Type": "Condition",
        "Description": "Register only a model whose PR-AUC beats the amount rule by Margin (step 04's test)",
        "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": lift, "RightValue": get("Parameters.Margin")}],
            "IfSteps": [register],
            "ElseSteps": [reject],
        },
    }
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": parameters,
        "Steps": [features, train, evaluate, gate],
    }
