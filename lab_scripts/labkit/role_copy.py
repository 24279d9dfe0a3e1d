"""A copy of one of the lab's roles with one permission taken out: the denial a missing
statement gives, seen on purpose (step 02's --without).

The copy gets the original's trust policy, tags (so step 10's audit finds one left behind)
and inline policies, minus the statements named; it is deleted when the `with` block ends.
"""
from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from urllib.parse import unquote

# --without <what>: the statement ids (stacks/ml_platform_stack.py) each removes.
REMOVABLE = {"kms": ("UseLabKey",)}
# IAM is eventually consistent: SageMaker may not see a new role for some seconds.
ROLE_VISIBLE_SECONDS = 30


@contextlib.contextmanager
def role_without(iam, role_arn: str, without: str) -> Iterator[tuple[str, list[dict]]]:
    """(the copy's ARN, the statements left out)."""
    name = role_arn.rsplit("/", 1)[1]
    original = iam.get_role(RoleName=name)["Role"]
    trust = _document(original["AssumeRolePolicyDocument"])
    copy = f"{name.split('-')[0]}-without-{without}-{secrets.token_hex(3)}"
    tags = iam.list_role_tags(RoleName=name)["Tags"]
    arn = iam.create_role(RoleName=copy, AssumeRolePolicyDocument=json.dumps(trust), Tags=tags,
                          Description=f"copy of {name} without its {without} permissions (step 02 --without {without})")["Role"]["Arn"]
    removed: list[dict] = []
    try:
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = _document(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"])
            statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
            kept = [s for s in statements if s.get("Sid") not in REMOVABLE[without]]
            removed += [s for s in statements if s.get("Sid") in REMOVABLE[without]]
            iam.put_role_policy(RoleName=copy, PolicyName=policy_name, PolicyDocument=json.dumps({**document, "Statement": kept}))
        yield arn, removed
    finally:
        for policy_name in iam.list_role_policies(RoleName=copy)["PolicyNames"]:
            iam.delete_role_policy(RoleName=copy, PolicyName=policy_name)
        iam.delete_role(RoleName=copy)


def _document(document: dict | str) -> dict:
    """A policy document as IAM returns it: parsed by botocore, or URL-encoded JSON."""
    return json.loads(unquote(document)) if isinstance(document, str) else document


def create_when_visible(create, timeout: float = ROLE_VISIBLE_SECONDS) -> None:
    """Call `create` (a Create*Job) until SageMaker can assume the new role."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            create()
            return
        except Exception as error:  # noqa: BLE001 - only SageMaker's "Could not assume role" is retried
            message = getattr(error, "response", {}).get("Error", {}).get("Message", "")
            if "Could not assume role" not in message or time.monotonic() > deadline:
                raise
            time.sleep(2)
