"""The boto3 session every lab step uses: real AWS, or the local AWS via AWS_ENDPOINT_URL."""
from __future__ import annotations

import os

import boto3
from botocore.config import Config

from labkit.errors import LabError

# Standard retry mode backs off on throttling; the steps add their own record-level retries.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


def aws_session() -> boto3.Session:
    """A session for the configured region; an unknown region is a one-line error."""
    # boto3 reads AWS_DEFAULT_REGION; many tools (and the AWS docs) use AWS_REGION: honour both.
    session = boto3.Session(region_name=os.environ.get("AWS_REGION") or None)
    region = session.region_name
    if not region:
        raise LabError("no AWS region: set AWS_REGION (e.g. export AWS_REGION=us-east-1) or run `aws configure`")
    known = set(session.get_available_regions("sagemaker")) | set(session.get_available_regions("firehose"))
    if region not in known:
        raise LabError(f"unknown AWS region {region!r}: set AWS_REGION to one where SageMaker runs, e.g. us-east-1")
    return session


def client(session: boto3.Session, service: str):
    return session.client(service, config=CLIENT_CONFIG)


def stacks_command(action: str, context: str = "") -> str:
    """The command that deploys or destroys the lab's stacks on the backend in use: the CDK
    CLI on AWS; on the local AWS its own deploy/destroy (the CDK CLI cannot drive moto's
    CloudFormation to the end; its destroy takes every stack of the lab, no context needed)."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return f"python -m localaws {action}{f' -c {context}' if context and action == 'deploy' else ''}"
    return f"npx cdk {action} --all{f' -c {context}' if context else ''}"


def endpoint_url() -> str:
    """The local AWS the calls go to, or "" on AWS (for what the learner is shown)."""
    return os.environ.get("AWS_ENDPOINT_URL", "")


def backend_description() -> str:
    """Where the calls go, for the learner's benefit (the steps never branch on it)."""
    return f"local AWS at {endpoint_url()}" if endpoint_url() else "AWS"


def each(service_client, operation: str, key: str, **kwargs) -> list:
    """Every item of a List*/Describe* call, all pages (one page of 100 would miss the rest)."""
    if service_client.can_paginate(operation):
        return [item for page in service_client.get_paginator(operation).paginate(**kwargs) for item in page.get(key, [])]
    return getattr(service_client, operation)(**kwargs).get(key, [])
