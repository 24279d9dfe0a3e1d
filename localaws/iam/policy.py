"""IAM policy documents evaluated as AWS evaluates them, for one request.

A statement applies when its Action (or NotAction), Resource (or NotResource), Principal
(resource policies) and every Condition match. Wildcards, policy variables, the condition
operators with their IfExists and ForAnyValue/ForAllValues forms, and the rule that a
negated operator matches a key the request does not carry, follow the IAM User Guide's
"IAM JSON policy elements reference" and "Policy evaluation logic". An operator this module
does not know raises PolicyError rather than being guessed.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any


class PolicyError(Exception):
    """A policy uses something the local AWS cannot evaluate (it says what)."""


class Effect(Enum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True)
class Principal:
    """Who makes the request: an assumed-role session, or an AWS service acting for the account."""
    arn: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>, or the service principal
    account: str
    role_arn: str | None = None  # arn:aws:iam::<account>:role/<name> for a session
    service: str | None = None  # e.g. sagemaker.amazonaws.com


@dataclass
class Request:
    """One authorization question: may `principal` do `action` on `resource`?"""
    principal: Principal
    action: str  # service:Action
    resource: str  # an ARN, or "*" for actions without resource types
    context: dict[str, list[str]] = field(default_factory=dict)  # condition keys, lower case

    def value(self, key: str) -> list[str] | None:
        return self.context.get(key.lower())


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def statements(document: dict) -> list[dict]:
    return as_list(document.get("Statement", []))


def _wildcard(pattern: str, value: str, ignore_case: bool) -> bool:
    """IAM's * and ? (no character classes: fnmatch's [ ] are escaped)."""
    pattern = pattern.replace("[", "[[]")
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def substitute(text: str, request: Request) -> str | None:
    """Policy variables (${aws:username}, ${*}, ...) replaced from the request; None when one
    is missing, which makes the element not match (IAM User Guide, "Policy variables")."""
    missing = False

    def replace(match: re.Match) -> str:
        nonlocal missing
        name = match.group(1)
        if name in ("*", "?", "$"):
            return {"*": "\x00STAR", "?": "\x00QMARK", "$": "$"}[name]
        key, _, default = name.partition(", ")
        values = request.value(key.strip())
        if values:
            return values[0]
        if default:
            return default.strip().strip("'")
        missing = True
        return ""

    result = _VARIABLE.sub(replace, text)
    return None if missing else result


def _matches_any(patterns: Any, value: str, request: Request, ignore_case: bool) -> bool:
    for pattern in as_list(patterns):
        resolved = substitute(pattern, request)
        if resolved is None:
            continue
        literal = "\x00STAR" in resolved or "\x00QMARK" in resolved
        if literal:  # ${*} and ${?} stand for the characters themselves
            resolved = resolved.replace("\x00STAR", "*").replace("\x00QMARK", "?")
            if (resolved.lower() == value.lower()) if ignore_case else resolved == value:
                return True
        elif _wildcard(resolved, value, ignore_case):
            return True
    return False


def _principal_matches(element: Any, principal: Principal) -> tuple[bool, bool]:
    """(matches, is the whole account): a resource policy naming the account (its ID or :root)
    delegates to the account's IAM policies rather than granting by itself."""
    if element == "*":
        return True, False
    element = element if isinstance(element, dict) else {"AWS": element}
    if principal.service:  # "AWS": "*" is everyone, services included
        return principal.service in as_list(element.get("Service", [])) or "*" in as_list(element.get("AWS", [])), False
    for value in as_list(element.get("AWS", [])):
        if value == "*" or value in (principal.arn, principal.role_arn):
            return True, False
        if value in (principal.account, f"arn:aws:iam::{principal.account}:root"):
            return True, True
    return False, False


# Condition operators: how one policy value compares with one request value.
def _string(policy: str, value: str) -> bool:
    return policy == value


def _parse_date(text: str) -> datetime:
    if re.fullmatch(r"\d+", text):
        return datetime.fromtimestamp(int(text), timezone.utc)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)  # a date alone is UTC


def _ordered(parse, compare):
    """An operator on values that parse into something ordered; one that does not parse
    does not match."""
    def check(policy: str, value: str) -> bool:
        try:
            return compare(parse(value), parse(policy))
        except ValueError:
            return False
    return check


def _number(compare):
    return _ordered(float, compare)


def _date(compare):
    return _ordered(_parse_date, compare)


def _ip(policy: str, value: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(policy, strict=False)
    except ValueError:
        return False


_OPERATORS: dict[str, tuple[Any, bool]] = {  # name: (compare, negated)
    "StringEquals": (_string, False),
    "StringNotEquals": (_string, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (lambda p, v: _wildcard(p, v, False), False),
    "StringNotLike": (lambda p, v: _wildcard(p, v, False), True),
    "ArnEquals": (lambda p, v: _wildcard(p, v, False), False),
    "ArnLike": (lambda p, v: _wildcard(p, v, False), False),
    "ArnNotEquals": (lambda p, v: _wildcard(p, v, False), True),
    "ArnNotLike": (lambda p, v: _wildcard(p, v, False), True),
    "NumericEquals": (_number(lambda v, p: v == p), False),
    "NumericNotEquals": (_number(lambda v, p: v == p), True),
    "NumericLessThan": (_number(lambda v, p: v < p), False),
    "NumericLessThanEquals": (_number(lambda v, p: v <= p), False),
    "NumericGreaterThan": (_number(lambda v, p: v > p), False),
    "NumericGreaterThanEquals": (_number(lambda v, p: v >= p), False),
    "DateEquals": (_date(lambda v, p: v == p), False),
    "DateNotEquals": (_date(lambda v, p: v == p), True),
    "DateLessThan": (_date(lambda v, p: v < p), False),
    "DateLessThanEquals": (_date(lambda v, p: v <= p), False),
    "DateGreaterThan": (_date(lambda v, p: v > p), False),
    "DateGreaterThanEquals": (_date(lambda v, p: v >= p), False),
    "Bool": (lambda p, v: p.lower() == v.lower(), False),
    "BinaryEquals": (_string, False),
    "IpAddress": (_ip, False),
    "NotIpAddress": (_ip, True),
}


def _condition_holds(operator: str, key: str, policy_values: Any, request: Request) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    values = request.value(key)
    expected = [str(v).lower() if isinstance(v, bool) else str(v) for v in as_list(policy_values)]
    if name == "Null":  # "true": the key must be absent
        return (values is None) == (expected[0].lower() == "true")
    if name not in _OPERATORS:
        raise PolicyError(f"condition operator {operator} is not one the local AWS evaluates")
    compare, negated = _OPERATORS[name]
    resolved = [substitute(v, request) for v in expected]
    expected = [v for v in resolved if v is not None]
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise PolicyError(f"condition set operator {qualifier} is not one IAM defines")
    if not values:
        # A missing (or empty) key: ForAllValues holds vacuously, ForAnyValue never; a single
        # valued operator matches only with IfExists or when negated.
        return qualifier == "ForAllValues" or (qualifier == "" and (if_exists or negated))
    matched = [any(compare(p, v) for p in expected) for v in values]
    if qualifier == "ForAllValues":
        return all(not m for m in matched) if negated else all(matched)
    if qualifier == "ForAnyValue":
        return any(not m for m in matched) if negated else any(matched)
    return all(not m for m in matched) if negated else any(matched)


def statement_applies(statement: dict, request: Request, *, resource_policy: bool = False) -> tuple[bool, bool]:
    """(applies, only by naming the account). Identity policies have no Principal."""
    if "NotAction" in statement:
        if _matches_any(statement["NotAction"], request.action, request, ignore_case=True):
            return False, False
    elif not _matches_any(statement.get("Action", []), request.action, request, ignore_case=True):
        return False, False
    if "NotResource" in statement:
        if _matches_any(statement["NotResource"], request.resource, request, ignore_case=False):
            return False, False
    elif "Resource" in statement or not resource_policy:  # trust policies have no Resource
        if not _matches_any(statement.get("Resource", []), request.resource, request, ignore_case=False):
            return False, False
    account_only = False
    if resource_policy:
        if "NotPrincipal" in statement:
            matched, _ = _principal_matches(statement["NotPrincipal"], request.principal)
            if matched:
                return False, False
        else:
            matched, account_only = _principal_matches(statement.get("Principal", {}), request.principal)
            if not matched:
                return False, False
    for operator, block in statement.get("Condition", {}).items():
        for key, policy_values in block.items():
            if not _condition_holds(operator, key, policy_values, request):
                return False, False
    return True, account_only


@dataclass
class Verdict:
    """What one set of documents says: an explicit deny, an allow, or nothing."""
    denied_by: dict | None = None
    allowed_by: list[tuple[str, dict]] = field(default_factory=list)  # (document name, statement)
    allowed_account_only: bool = False  # a resource policy that only delegates to the account


def evaluate(documents: list[tuple[str, dict]], request: Request, *, resource_policy: bool = False) -> Verdict:
    """Every statement of the named `documents` that applies to `request`."""
    verdict = Verdict()
    for name, document in documents:
        for statement in statements(document):
            applies, account_only = statement_applies(statement, request, resource_policy=resource_policy)
            if not applies:
                continue
            if statement.get("Effect") == Effect.DENY.value:
                verdict.denied_by = verdict.denied_by or statement
            elif account_only:
                verdict.allowed_account_only = True
            else:
                verdict.allowed_by.append((name, statement))
    return verdict
