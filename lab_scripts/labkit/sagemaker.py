"""What the SageMaker steps share: tags, code upload, job names, waiting, pointers in S3."""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path

from labkit import console, polling
from labkit.errors import LabError

TAGS = [{"Key": "project", "Value": "fraudlab"}]
ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "/opt/ml/processing"


def s3_input(name: str, uri: str, local_path: str) -> dict:
    """A Processing input every host gets in full (FullyReplicated), staged as files."""
    return {
        "InputName": name,
        "S3Input": {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
    }


def isolated_processing_job(
    name: str,
    outputs: dict[str, str],
    *,
    role: str,
    script: str,
    arguments: list[str],
    inputs: list[dict],
    results: dict[str, tuple[str, str]],
    instance_type: str,
    instance_count: int = 1,
    volume_gb: int,
    max_runtime_seconds: int,
) -> dict:
    """A CreateProcessingJob request as the lab's steps run them: as the `role` execution
    role (Processing, Monitoring: each reaches only its own prefixes), `script` from the code
    input, in the isolated VPC with network isolation, volume and `results` ({output name:
    (S3 URI, container path)}) encrypted with the lab key, tagged."""
    return {
        "ProcessingJobName": name,
        "RoleArn": outputs[f"{role}RoleArn"],
        "AppSpecification": {
            "ImageUri": outputs["XgboostImageUri"],
            "ContainerEntrypoint": ["python3", f"{CONTAINER}/input/code/{script}"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "KmsKeyId": outputs["KeyArn"],
            "Outputs": [
                {"OutputName": output, "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"}}
                for output, (uri, local_path) in results.items()
            ],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": volume_gb,
                "VolumeKmsKeyId": outputs["KeyArn"],
            }
        },
        "NetworkConfig": {
            "EnableNetworkIsolation": True,
            "VpcConfig": {"SecurityGroupIds": [outputs["SecurityGroupId"]], "Subnets": outputs["SubnetIds"].split(",")},
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
        "Tags": TAGS,
    }


def job_name(prefix: str) -> str:
    """Unique, sortable, within SageMaker's 63 characters."""
    return f"{prefix}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"[:63]


def upload_code(s3, bucket: str, directory: Path, files: tuple[str, ...]) -> str:
    """Upload code under a content hash (same code, same prefix: reruns reuse it)."""
    digest = hashlib.sha256(b"".join((directory / f).read_bytes() for f in files)).hexdigest()[:12]
    prefix = f"code/{directory.name}/{digest}/"
    for name in files:
        s3.upload_file(str(directory / name), bucket, prefix + name)
    return f"s3://{bucket}/{prefix}"


def wait_for_job(
    describe,
    name: str,
    status_key: str,
    timeout_seconds: float = 3600,
    done: tuple[str, ...] = ("Completed", "Failed", "Stopped"),
    success: str = "Completed",
) -> dict:
    """Poll a Describe* call until the resource settles, saying what it does (a training job's
    secondary status too) at least every PROGRESS_SECONDS; a failure is a LabError with its reason."""
    started, last, told, waits = time.monotonic(), None, time.monotonic(), polling.intervals()
    while True:
        job = describe(name)
        status = job[status_key]
        shown = f"{status} ({job['SecondaryStatus']})" if job.get("SecondaryStatus") not in (None, status) else status
        if shown != last:
            console.note(f"{name}: {shown} after {time.monotonic() - started:.0f} s")
            last, told = shown, time.monotonic()
        elif time.monotonic() - told >= polling.PROGRESS_SECONDS:
            console.note(f"{name}: still {shown} after {time.monotonic() - started:.0f} s")
            told = time.monotonic()
        if status in done:
            break
        if time.monotonic() - started > timeout_seconds:
            raise LabError(f"{name} still {status} after {timeout_seconds:.0f} s: see it in the SageMaker console")
        time.sleep(next(waits))
    if status != success:
        raise LabError(f"{name} {status}: {job.get('FailureReason', 'no reason given')}")
    return job


def read_pointer(s3, bucket: str, key: str) -> dict | None:
    """A small JSON note one step leaves for the next (e.g. features/latest.json)."""
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def feature_schema(s3, bucket: str, job: str | None = None) -> dict:
    """feature_schema.json of feature job `job` (splits, label delay, row counts), by
    default of the latest features step 02 made (features/latest.json)."""
    if job is None:
        pointer = read_pointer(s3, bucket, "features/latest.json")
        if pointer is None:
            raise LabError("no features yet: run lab_scripts/02_feature_engineering.py first")
        job = pointer["job"]
    return json.loads(s3.get_object(Bucket=bucket, Key=f"features/{job}/schema/feature_schema.json")["Body"].read())


def write_pointer(s3, bucket: str, key: str, value: dict) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(value, indent=2).encode(), ContentType="application/json")


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def approve_command(arn: str) -> str:
    """How a reviewer approves a package by hand (the AWS CLI reads AWS_ENDPOINT_URL, so the
    same command works against the local AWS after `source .localaws/env`)."""
    return (f'aws sagemaker update-model-package --model-package-arn {arn} --model-approval-status Approved '
            '--approval-description "reviewed by hand"')
