"""Find the deployed lab: stack outputs are the contract between `cdk deploy` and the steps."""
from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from labkit.errors import LabError
from labkit.session import client, stacks_command

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
STACKS = ("Network", "Data", "MLPlatform")


def stack_prefix() -> str:
    """The stack name prefix from cdk.json (FRAUDLAB_STACK_PREFIX overrides it)."""
    prefix = os.environ.get("FRAUDLAB_STACK_PREFIX")
    if prefix:
        return prefix
    return json.loads(CDK_JSON.read_text())["context"]["fraudlab:stackPrefix"]


def stack_names() -> list[str]:
    return [f"{stack_prefix()}-{suffix}" for suffix in STACKS]


def stack_status(session: boto3.Session, name: str) -> str | None:
    """The stack's status, or None when it does not exist."""
    try:
        return client(session, "cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" in error.response["Error"].get("Message", ""):
            return None
        raise


def stack_outputs(session: boto3.Session, name: str) -> dict[str, str]:
    """The stack's outputs; none when it does not exist (the step says what to deploy)."""
    try:
        stack = client(session, "cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in error.response["Error"].get("Message", ""):
            return {}
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def lab_outputs(session: boto3.Session, *required: str) -> dict[str, str]:
    """All outputs of the lab's stacks, checked for the keys a step needs."""
    outputs: dict[str, str] = {}
    for name in stack_names():
        status = stack_status(session, name)
        if status is None:
            raise LabError(f"stack {name} is not deployed: run `{stacks_command('deploy')}`")
        if not status.endswith("_COMPLETE") or status.startswith(("DELETE", "ROLLBACK")) or "ROLLBACK" in status:
            raise LabError(f"stack {name} is {status}: fix it in the CloudFormation console, then `{stacks_command('deploy')}`")
        outputs.update(stack_outputs(session, name))
    missing = [key for key in required if key not in outputs]
    if missing:
        raise LabError(f"stack outputs {', '.join(missing)} are missing: redeploy with `{stacks_command('deploy')}`")
    return outputs
