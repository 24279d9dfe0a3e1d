"""Step 03 — Train the fraud model with SageMaker's built-in XGBoost algorithm.

What you do: run `python lab_scripts/03_train_model.py [--spot] [--tune] [--rerun]`.
What you see: a training job on the built-in XGBoost image (URI resolved for your region)
with objective binary:logistic, eval_metric aucpr and early stopping on the validation
set; the class imbalance handled with scale_pos_weight = legitimate / fraud in the
training set; the job in the isolated VPC with network isolation; its final metrics and
where model.tar.gz landed. --spot uses managed spot training (up to 90 % cheaper) with
checkpoints in S3 so an interruption resumes; --tune runs a small Bayesian hyperparameter
tuning job (6 trainings, 2 at a time) and keeps its best model.

Where to look: SageMaker console > Training > Training jobs (or Hyperparameter tuning
jobs); CloudWatch Logs /aws/sagemaker/TrainingJobs; S3 models/.

Exam task statements: MLA-C01 2.1 (choose a modeling approach: built-in algorithms),
2.2 (train and refine models: hyperparameters, early stopping, class imbalance, spot
training and checkpointing, automatic model tuning), MLS-C01 3.2 (select the appropriate
model), 3.4 (perform hyperparameter optimization).
"""
from __future__ import annotations

import argparse

from labkit import console, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.outputs import lab_outputs
from labkit.sagemaker import TAGS, feature_schema, job_name, read_pointer, wait_for_job, write_pointer
from labkit.session import aws_session, client
from processing.training import HYPERPARAMETERS, scale_pos_weight

POINTER = "models/latest.json"
TUNING_RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0.03", "MaxValue": "0.3", "ScalingType": "Logarithmic"},
        {"Name": "subsample", "MinValue": "0.6", "MaxValue": "1.0", "ScalingType": "Linear"},
    ],
    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "3", "MaxValue": "8", "ScalingType": "Linear"}],
}
TUNED = {r["Name"] for ranges in TUNING_RANGES.values() for r in ranges}


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--instance-type", default="ml.m5.large", help="training instance type (SageMaker Training pricing applies)")
    parser.add_argument("--spot", action="store_true", help="managed spot training with S3 checkpoints")
    parser.add_argument("--tune", action="store_true", help="Bayesian tuning: 6 training jobs, 2 in parallel")
    parser.add_argument("--rerun", action="store_true", help="train again even if a model exists")
    return parser.parse_args()


def training_definition(args, outputs: dict[str, str], features_uri: str, image: str, weight: float) -> dict:
    bucket = outputs["LabBucketName"]

    def channel(name: str) -> dict:
        return {
            "ChannelName": name,
            "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{features_uri}/{name}/", "S3DataDistributionType": "FullyReplicated"}},
        }

    definition = {
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": outputs["TrainingRoleArn"],
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models/", "KmsKeyId": outputs["KeyArn"]},
        "ResourceConfig": {"InstanceType": args.instance_type, "InstanceCount": 1, "VolumeSizeInGB": 10, "VolumeKmsKeyId": outputs["KeyArn"]},
        "VpcConfig": {"SecurityGroupIds": [outputs["SecurityGroupId"]], "Subnets": outputs["SubnetIds"].split(",")},
        "EnableNetworkIsolation": True,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    hyperparameters = {**HYPERPARAMETERS, "scale_pos_weight": f"{weight:.2f}"}
    if args.spot:
        definition["EnableManagedSpotTraining"] = True
        definition["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200  # waiting for capacity counts here
        definition["CheckpointConfig"] = {"S3Uri": f"s3://{bucket}/models/checkpoints/", "LocalPath": "/opt/ml/checkpoints"}
    return definition, hyperparameters


def train(sagemaker, name: str, definition: dict, hyperparameters: dict) -> dict:
    sagemaker.create_training_job(TrainingJobName=name, HyperParameters=hyperparameters, Tags=TAGS, **definition)
    return wait_for_job(lambda n: sagemaker.describe_training_job(TrainingJobName=n), name, "TrainingJobStatus")


def tuning_definition(definition: dict, hyperparameters: dict) -> dict:
    """The training job definition of the tuning job: the same job, minus the tuned values.

    StoppingCondition travels unchanged: with --spot it carries MaxWaitTimeInSeconds, which
    SageMaker requires whenever managed spot training is on."""
    static = {k: v for k, v in hyperparameters.items() if k not in TUNED}
    return {**definition, "StaticHyperParameters": static}


def tune(sagemaker, name: str, definition: dict, hyperparameters: dict) -> dict:
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name[:32],
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:aucpr"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": TUNING_RANGES,
        },
        TrainingJobDefinition=tuning_definition(definition, hyperparameters),
        Tags=TAGS,
    )
    tuning = wait_for_job(
        lambda n: sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=n),
        name[:32],
        "HyperParameterTuningJobStatus",
    )
    best = tuning.get("BestTrainingJob", {}).get("TrainingJobName")
    if not best:
        raise LabError(f"tuning job {name[:32]} finished without a best training job: see it in the console")
    console.done(f"best of {tuning['TrainingJobStatusCounters']['Completed']} trainings: {best}")
    return sagemaker.describe_training_job(TrainingJobName=best)


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "TrainingRoleArn", "KeyArn", "SubnetIds", "SecurityGroupId", "XgboostImageUri")
    bucket, s3, sagemaker = outputs["LabBucketName"], client(session, "s3"), client(session, "sagemaker")
    features = read_pointer(s3, bucket, "features/latest.json")
    if features is None:
        raise LabError("no features yet: run lab_scripts/02_feature_engineering.py first")

    previous = read_pointer(s3, bucket, POINTER)
    if previous and previous["features"] == features["uri"] and not args.rerun:
        console.heading(f"Model: reusing {previous['training_job']} (pass --rerun to train again)")
        job = sagemaker.describe_training_job(TrainingJobName=previous["training_job"])
    else:
        schema = feature_schema(s3, bucket, features["job"])
        train_counts = schema["splits"]["train"]
        if train_counts["fraud"] == 0:
            raise LabError("the training set has no fraud: stream more transactions (step 01 --count)")
        weight = scale_pos_weight(train_counts["rows"], train_counts["fraud"])
        image = outputs["XgboostImageUri"]
        definition, hyperparameters = training_definition(args, outputs, features["uri"], image, weight)
        name = job_name("fraudlab-xgb")
        console.heading(f"{'Tuning' if args.tune else 'Training'} {name} on {image.split('/')[-1]}")
        console.note(f"scale_pos_weight {weight:.1f} ({train_counts['fraud']:,} fraud of {train_counts['rows']:,})")
        job = (tune if args.tune else train)(sagemaker, name, definition, hyperparameters)
        write_pointer(s3, bucket, POINTER, {
            "training_job": job["TrainingJobName"],
            "model_data": job["ModelArtifacts"]["S3ModelArtifacts"],
            "features": features["uri"],
            "image": image,
        })

    metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    console.table([(k, f"{v:.4f}") for k, v in sorted(metrics.items())], ("final metric", "value"))
    console.done(f"model: {job['ModelArtifacts']['S3ModelArtifacts']}")
    results.record(
        f"validation PR-AUC {metrics.get('validation:aucpr', float('nan')):.3f}",
        validation_aucpr=metrics.get("validation:aucpr", float("nan")),
    )
    return 0


if __name__ == "__main__":
    run_step(main)
