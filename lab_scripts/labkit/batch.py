"""Batch transform: a whole day of payments scored by a SageMaker transform job.

The job uses the endpoint's own Model, so it runs the same container with the same
network isolation, VPC and role; its input and output are encrypted with the lab key.
Each input line is `transaction_id,<features>`: the InputFilter drops the id before the
model sees the line, JoinSource Input appends the prediction ("probability,decision") to
the whole line, and the OutputFilter keeps the id and the probability ("$[0,-2]").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from labkit.sagemaker import TAGS, job_name, wait_for_job
from labkit.traffic import csv_body

INSTANCE_TYPE = "ml.m5.large"
MAX_PAYLOAD_MB = 1  # small requests: a day of payments still takes only a few


@dataclass(frozen=True)
class BatchRun:
    job: str
    rows: int
    seconds: float  # TransformStartTime to TransformEndTime
    scores: pd.Series  # probability text by transaction_id, as the job wrote it


def input_csv(transaction_ids: pd.Series, features: np.ndarray) -> bytes:
    """One line per payment: its id, then its features as the endpoint's clients send them."""
    lines = csv_body(features).split("\n")
    return ("\n".join(f"{tid},{line}" for tid, line in zip(transaction_ids, lines)) + "\n").encode()


def transform_request(name: str, model: str, bucket: str, key_arn: str, prefix: str) -> dict:
    return {
        "TransformJobName": name,
        "ModelName": model,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/batch/input/{prefix}/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-2]"},
        "TransformOutput": {"S3OutputPath": f"s3://{bucket}/batch/output/{prefix}/", "Accept": "text/csv", "AssembleWith": "Line", "KmsKeyId": key_arn},
        "TransformResources": {"InstanceType": INSTANCE_TYPE, "InstanceCount": 1, "VolumeKmsKeyId": key_arn},
        "Tags": TAGS,
    }


def run_batch(s3, sagemaker, bucket: str, key_arn: str, model: str, transaction_ids: pd.Series, features: np.ndarray) -> BatchRun:
    """Upload the day's payments, run the transform job to the end, read what it wrote."""
    name = job_name("fraudlab-transform")
    s3.put_object(Bucket=bucket, Key=f"batch/input/{name}/payments.csv", Body=input_csv(transaction_ids, features),
                  ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
    sagemaker.create_transform_job(**transform_request(name, model, bucket, key_arn, name))
    described = wait_for_job(lambda n: sagemaker.describe_transform_job(TransformJobName=n), name, "TransformJobStatus")
    body = s3.get_object(Bucket=bucket, Key=f"batch/output/{name}/payments.csv.out")["Body"].read().decode()
    pairs = [line.split(",") for line in body.splitlines() if line]
    seconds = (described["TransformEndTime"] - described["TransformStartTime"]).total_seconds()
    return BatchRun(name, len(pairs), seconds, pd.Series([p for _, p in pairs], index=[t for t, _ in pairs]))


def endpoint_scores(runtime, endpoint: str, transaction_ids: pd.Series, features: np.ndarray, batch: int = 100) -> pd.Series:
    """The endpoint's probability text for the same payments (CSV in and out, as the job)."""
    scores = []
    for start in range(0, len(features), batch):
        reply = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Accept="text/csv",
                                        Body=csv_body(features[start : start + batch]))["Body"].read().decode()
        scores.extend(line.split(",")[0] for line in reply.splitlines() if line)
    return pd.Series(scores, index=list(transaction_ids))
