"""SageMaker jobs on the local AWS run for real, and report what really happened."""
from __future__ import annotations

import io
import json
import tarfile
import time

import numpy as np
import pytest
import xgboost as xgb

from tests.helpers import sagemaker_role
from localaws.sagemaker import builtin_xgboost

ROLE = "arn:aws:iam::123456789012:role/FraudLab-test"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"


def wait(describe, key: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = describe()
        if job[key] in ("Completed", "Failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


@pytest.fixture(scope="module")
def aws(local_aws, outputs):
    server, _ = local_aws
    session = server.session()
    sagemaker_role(session, ROLE.rsplit("/", 1)[1])
    return session.client("s3"), session.client("sagemaker"), outputs["LabBucketName"]


def processing_job(sagemaker, name: str, bucket: str, script_key: str, instances: int = 1, distribution: str = "FullyReplicated"):
    sagemaker.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={"ImageUri": XGBOOST_IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"]},
        ProcessingInputs=[
            {"InputName": "code", "S3Input": {"S3Uri": f"s3://{bucket}/{script_key}", "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "data", "S3Input": {"S3Uri": f"s3://{bucket}/code/test-data/", "LocalPath": "/opt/ml/processing/input/data", "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": distribution}},
        ],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {"S3Uri": f"s3://{bucket}/features/{name}", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": instances, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        StoppingCondition={"MaxRuntimeInSeconds": 120},
    )
    return wait(lambda: sagemaker.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")


SCRIPT = b"""
import json, os, pathlib
root = pathlib.Path(os.environ.get("FRAUDLAB_OPT_ML", "/opt/ml"))
resource = json.loads((root / "config/resourceconfig.json").read_text())
config = json.loads((root / "config/processingjobconfig.json").read_text())
files = sorted(p.name for p in (root / "processing/input/data").iterdir())
if "boom.txt" in files:
    raise ValueError("the input contains boom.txt")
(root / "processing/output" / (resource["current_host"] + ".json")).write_text(json.dumps(
    {"host": resource["current_host"], "hosts": resource["hosts"], "files": files, "job": config["ProcessingJobName"]}))
"""


def test_processing_job_runs_its_script_with_the_container_contract(aws):
    s3, sagemaker, bucket = aws
    s3.put_object(Bucket=bucket, Key="code/test-job/job.py", Body=SCRIPT)
    for name in ("a.csv", "b.csv", "c.csv", "d.csv"):
        s3.put_object(Bucket=bucket, Key=f"code/test-data/{name}", Body=b"1")
    job = processing_job(sagemaker, "contract-job", bucket, "code/test-job/", instances=2, distribution="ShardedByS3Key")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    reports = {h: json.loads(s3.get_object(Bucket=bucket, Key=f"features/contract-job/{h}.json")["Body"].read()) for h in ("algo-1", "algo-2")}
    assert reports["algo-1"]["hosts"] == ["algo-1", "algo-2"] and reports["algo-1"]["job"] == "contract-job"
    assert reports["algo-1"]["files"] == ["a.csv", "c.csv"] and reports["algo-2"]["files"] == ["b.csv", "d.csv"]


def test_a_crashing_script_fails_the_job_with_its_reason(aws, local_aws):
    s3, sagemaker, bucket = aws
    s3.put_object(Bucket=bucket, Key="code/test-data/boom.txt", Body=b"x")
    try:
        job = processing_job(sagemaker, "crashing-job", bucket, "code/test-job/")
    finally:
        s3.delete_object(Bucket=bucket, Key="code/test-data/boom.txt")
    assert job["ProcessingJobStatus"] == "Failed"
    assert "AlgorithmError" in job["FailureReason"]
    assert "ValueError: the input contains boom.txt" in job["FailureReason"]
    server, _ = local_aws
    events = server.session().client("logs").get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName="crashing-job/algo-1")["events"]
    assert any("Traceback" in e["message"] for e in events)


def test_a_job_with_no_input_objects_fails_clearly(aws):
    s3, sagemaker, bucket = aws
    sagemaker.create_training_job(
        TrainingJobName="empty-input",
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        HyperParameters={"num_round": "5", "objective": "binary:logistic"},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/features/nothing-here/"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    job = wait(lambda: sagemaker.describe_training_job(TrainingJobName="empty-input"), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: no objects under s3://")


def synthetic_csv(rng: np.random.Generator, rows: int) -> bytes:
    x = rng.normal(size=(rows, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 1.2).astype(int)
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([y, x]), fmt="%.6g", delimiter=",")
    return buffer.getvalue().encode()


def test_builtin_xgboost_training_job_produces_the_container_artifact(aws):
    s3, sagemaker, bucket = aws
    rng = np.random.default_rng(0)
    s3.put_object(Bucket=bucket, Key="features/synthetic/train/part.csv", Body=synthetic_csv(rng, 2_000))
    s3.put_object(Bucket=bucket, Key="features/synthetic/validation/part.csv", Body=synthetic_csv(rng, 500))
    channels = [
        {"ChannelName": c, "ContentType": "text/csv", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/features/synthetic/{c}/"}}}
        for c in ("train", "validation")
    ]
    sagemaker.create_training_job(
        TrainingJobName="synthetic-xgb",
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        HyperParameters={"num_round": "50", "objective": "binary:logistic", "eval_metric": "aucpr", "early_stopping_rounds": "5", "max_depth": "3"},
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
        CheckpointConfig={"S3Uri": f"s3://{bucket}/models/checkpoints/synthetic/"},
    )
    job = wait(lambda: sagemaker.describe_training_job(TrainingJobName="synthetic-xgb"), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics["validation:aucpr"] > 0.9
    key = job["ModelArtifacts"]["S3ModelArtifacts"].split(f"{bucket}/", 1)[1]
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz") as archive:
        assert archive.getnames() == ["xgboost-model"]
        booster = xgb.Booster()
        booster.load_model(bytearray(archive.extractfile("xgboost-model").read()))
    assert booster.num_features() == 4
    checkpoints = s3.list_objects_v2(Bucket=bucket, Prefix="models/checkpoints/synthetic/")["Contents"]
    assert any("xgboost-checkpoint." in c["Key"] for c in checkpoints)


def test_artifact_predicts_identically_after_unpacking(tmp_path):
    """Train with the algorithm, tar as the runner does, unpack, load as the container does."""
    from localaws.sagemaker.jobs import _tar_gz

    rng = np.random.default_rng(1)
    for channel, rows in (("train", 1_000), ("validation", 300)):
        (tmp_path / channel).mkdir()
        (tmp_path / channel / "part.csv").write_bytes(synthetic_csv(rng, rows))
    builtin_xgboost.train({"num_round": "20", "objective": "binary:logistic"}, {"train": tmp_path / "train", "validation": tmp_path / "validation"}, tmp_path / "model", None, lambda line: None)
    original = xgb.Booster()
    original.load_model(bytearray((tmp_path / "model" / "xgboost-model").read_bytes()))
    with tarfile.open(fileobj=io.BytesIO(_tar_gz(tmp_path / "model")), mode="r:gz") as archive:
        loaded = xgb.Booster()
        loaded.load_model(bytearray(archive.extractfile("xgboost-model").read()))
    data = xgb.DMatrix(rng.normal(size=(200, 4)))
    np.testing.assert_array_equal(original.predict(data), loaded.predict(data))
    assert loaded.attr("best_iteration") is None or int(loaded.attr("best_iteration")) >= 0
    assert xgb.__version__.startswith("3.2"), "keep the library on the image's version line (3.2-0)"


@pytest.mark.parametrize("hyperparameters, message", [({}, "num_round is required"), ({"num_round": "5", "early_stopping_rounds": "3"}, "needs a validation channel")])
def test_bad_hyperparameters_are_client_errors(tmp_path, hyperparameters, message):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part.csv").write_bytes(synthetic_csv(np.random.default_rng(2), 50))
    with pytest.raises(builtin_xgboost.AlgorithmInputError, match=message):
        builtin_xgboost.train(hyperparameters, {"train": tmp_path / "train"}, tmp_path / "model", None, lambda line: None)


def test_spot_training_without_max_wait_is_refused_as_sagemaker_does(aws):
    _, sagemaker, bucket = aws
    definition = {
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "EnableManagedSpotTraining": True,
    }
    with pytest.raises(sagemaker.exceptions.ClientError, match="MaxWaitTimeInSeconds"):
        sagemaker.create_training_job(TrainingJobName="spot-no-wait", HyperParameters={}, **definition)
    with pytest.raises(sagemaker.exceptions.ClientError, match="MaxWaitTimeInSeconds"):
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="spot-no-wait-tuning",
            HyperParameterTuningJobConfig={"Strategy": "Random", "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
                                           "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:aucpr"}},
            TrainingJobDefinition=definition,
        )


def test_step_03_spot_tuning_keeps_max_wait_in_the_tuning_definition():
    from tests.helpers import load_step

    step = load_step("03_train_model.py")
    outputs = {"LabBucketName": "b", "TrainingRoleArn": ROLE, "KeyArn": "arn:aws:kms:us-east-1:123456789012:key/k",
               "SecurityGroupId": "sg-1", "SubnetIds": "subnet-1,subnet-2"}
    definition, hyperparameters = step.training_definition(
        type("Args", (), {"spot": True, "instance_type": "ml.m5.large"})(), outputs, "s3://b/features/x", XGBOOST_IMAGE, 50.0)
    tuned = step.tuning_definition(definition, hyperparameters)
    assert tuned["EnableManagedSpotTraining"] is True
    assert tuned["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert not {"eta", "subsample", "max_depth"} & set(tuned["StaticHyperParameters"])


def test_offline_training_never_runs_more_xgboost_threads_than_cores(tmp_path, monkeypatch):
    """Fitted thread count unless the job sets nthread; concurrent trainings take turns."""
    import os
    import threading

    rng = np.random.default_rng(2)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part.csv").write_bytes(synthetic_csv(rng, 300))
    seen, running, overlap = [], [0], [False]
    real_train = xgb.train

    def observed_train(params, *args, **kwargs):
        running[0] += 1
        overlap[0] |= running[0] > 1
        seen.append(params["nthread"])
        try:
            return real_train(params, *args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(builtin_xgboost.xgb, "train", observed_train)
    train = lambda extra, out: builtin_xgboost.train({"num_round": "30", **extra}, {"train": tmp_path / "train"}, tmp_path / out, None, lambda line: None)  # noqa: E731
    threads = [threading.Thread(target=train, args=({}, f"m{i}")) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    train({"nthread": "1"}, "own")
    cores = len(os.sched_getaffinity(0))
    assert seen[:3] == [max(1, cores - 1)] * 3 and seen[3] == 1
    assert not overlap[0]


REACH_SCRIPT = b"""
import json, os, pathlib
import boto3
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
root = pathlib.Path(os.environ["FRAUDLAB_OPT_ML"])
config = Config(retries={"max_attempts": 1}, connect_timeout=5)
calls = {
    "s3": lambda: boto3.client("s3", config=config).list_buckets(),
    "cloudwatch": lambda: boto3.client("cloudwatch", config=config).list_metrics(Namespace="FraudLab"),
    "firehose": lambda: boto3.client("firehose", config=config).list_delivery_streams(),
    "sagemaker": lambda: boto3.client("sagemaker", config=config).list_endpoints(),
}
reached = {}
for service, call in calls.items():
    try:
        call()
        reached[service] = "reached"
    except EndpointConnectionError:
        reached[service] = "no route"
(root / "processing/output/reach.json").write_text(json.dumps(reached))
"""


@pytest.mark.parametrize("in_vpc", [True, False], ids=["lab-vpc", "no-vpc"])
def test_a_job_in_the_lab_vpc_reaches_only_the_services_of_its_endpoints(aws, outputs, in_vpc):
    """Regression: offline every container with network reached the whole local AWS, VpcConfig
    or not. In the lab's VPC (isolated subnets, an S3 gateway and the CloudWatch metrics
    endpoint) a call to Firehose or the SageMaker API has no route, on AWS and now offline."""
    s3, sagemaker, bucket = aws
    s3.put_object(Bucket=bucket, Key="code/test-reach/job.py", Body=REACH_SCRIPT)
    name = f"reach-{'vpc' if in_vpc else 'open'}"
    network = {"VpcConfig": {"Subnets": outputs["SubnetIds"].split(","), "SecurityGroupIds": [outputs["SecurityGroupId"]]}} if in_vpc else {}
    sagemaker.create_processing_job(
        ProcessingJobName=name, RoleArn=ROLE, NetworkConfig=network,
        AppSpecification={"ImageUri": XGBOOST_IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"]},
        ProcessingInputs=[{"InputName": "code", "S3Input": {"S3Uri": f"s3://{bucket}/code/test-reach/", "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {"S3Uri": f"s3://{bucket}/features/{name}", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        StoppingCondition={"MaxRuntimeInSeconds": 120},
    )
    job = wait(lambda: sagemaker.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    reached = json.loads(s3.get_object(Bucket=bucket, Key=f"features/{name}/reach.json")["Body"].read())
    expected = "no route" if in_vpc else "reached"
    assert reached == {"s3": "reached", "cloudwatch": "reached", "firehose": expected, "sagemaker": expected}


def test_a_job_whose_vpc_config_names_no_subnet_fails_with_sagemaker_s_reason(aws):
    s3, sagemaker, bucket = aws
    s3.put_object(Bucket=bucket, Key="code/test-reach/job.py", Body=REACH_SCRIPT)
    sagemaker.create_processing_job(
        ProcessingJobName="reach-missing-subnet", RoleArn=ROLE,
        NetworkConfig={"VpcConfig": {"Subnets": ["subnet-0000000000000000f"], "SecurityGroupIds": ["sg-0000000000000000f"]}},
        AppSpecification={"ImageUri": XGBOOST_IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"]},
        ProcessingInputs=[{"InputName": "code", "S3Input": {"S3Uri": f"s3://{bucket}/code/test-reach/", "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    job = wait(lambda: sagemaker.describe_processing_job(ProcessingJobName="reach-missing-subnet"), "ProcessingJobStatus")
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: VpcConfig:") and "subnet-0000000000000000f" in job["FailureReason"]
