"""The lab's one way to make a role for an AWS service."""
from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct


def service_role(
    scope: Construct, role_id: str, policy_id: str, *, service: str, description: str, statements: list[iam.PolicyStatement]
) -> tuple[iam.Role, iam.Policy]:
    """A role only `service` can assume, and only on behalf of this account (the
    aws:SourceAccount condition guards against the confused deputy), with one inline
    policy holding exactly `statements`."""
    role = iam.Role(
        scope,
        role_id,
        assumed_by=iam.ServicePrincipal(service, conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}),
        description=description,
    )
    policy = iam.Policy(scope, policy_id, statements=statements)
    role.attach_inline_policy(policy)
    return role, policy
