"""A SageMaker pipeline definition, checked as SageMaker checks it and read as its runner
(pipelines.py) needs it: the checks CreatePipeline, UpdatePipeline and StartPipelineExecution
apply (DefinitionError is their ValidationException), its steps, the `Get` references between
them, their order, its parameters' values and CacheConfig durations.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

VERSION = "2020-12-01"
STEP_TYPES = ("Processing", "Training", "RegisterModel", "Condition", "Fail")
EXECUTION_VARIABLES = ("PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn", "StartDateTime", "CurrentDateTime")
DURATION = re.compile(r"^P?(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE)


class DefinitionError(Exception):
    """The definition is not one SageMaker would accept (CreatePipeline's ValidationException)."""


def validate(definition_text: str) -> dict:
    """The parsed definition, or DefinitionError saying what SageMaker would refuse."""
    try:
        definition = json.loads(definition_text)
    except json.JSONDecodeError as error:
        raise DefinitionError(f"the pipeline definition is not JSON: {error}") from None
    if definition.get("Version") != VERSION:
        raise DefinitionError(f"unsupported pipeline definition Version {definition.get('Version')!r} (expected {VERSION})")
    parameters = {p["Name"] for p in definition.get("Parameters", [])}
    steps = {step["Name"]: step for step in all_steps(definition.get("Steps", []))}
    if len(steps) != len(list(all_steps(definition.get("Steps", [])))):
        raise DefinitionError("step names must be unique within a pipeline")
    for name, step in steps.items():
        if step.get("Type") not in STEP_TYPES:
            raise DefinitionError(f"step {name}: type {step.get('Type')!r} is not run by the local AWS (it runs {', '.join(STEP_TYPES)})")
        for other in step.get("DependsOn", []):
            if other not in steps:
                raise DefinitionError(f"step {name} depends on undefined step {other}")
        for reference in references(step.get("Arguments", {})):
            root, _, rest = reference.partition(".")
            if root == "Parameters" and rest not in parameters:
                raise DefinitionError(f"step {name} refers to undefined parameter {rest}")
            if root == "Execution" and rest not in EXECUTION_VARIABLES:
                raise DefinitionError(f"step {name} refers to unknown execution variable {rest}")
            if root == "Steps":
                target, _, path = rest.partition(".")
                if target not in steps:
                    raise DefinitionError(f"step {name} refers to undefined step {target}")
                if path.startswith("PropertyFiles."):
                    declared = {f["PropertyFileName"] for f in steps[target].get("PropertyFiles", [])}
                    if path.removeprefix("PropertyFiles.") not in declared:
                        raise DefinitionError(f"step {name} refers to property file {path} that step {target} does not declare")
            elif root not in ("Parameters", "Execution"):
                raise DefinitionError(f"step {name}: cannot resolve Get {reference!r}")
    return definition


def all_steps(steps: list[dict]):
    """Every step, the ones inside a Condition's branches included."""
    for step in steps:
        yield step
        if step.get("Type") == "Condition":
            yield from all_steps(step.get("Arguments", {}).get("IfSteps", []))
            yield from all_steps(step.get("Arguments", {}).get("ElseSteps", []))


def references(value: Any) -> list[str]:
    """Every `Get` path in a value."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            return [value["Get"]]
        return [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    return []


def duration(text: str) -> timedelta:
    """An ISO 8601 duration as CacheConfig.ExpireAfter takes it ("PT1H", "P30D", "30d")."""
    match = DURATION.match(text or "")
    if not match or not any(match.groups()):
        raise DefinitionError(f"CacheConfig ExpireAfter {text!r} is not an ISO 8601 duration")
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=365 * years + 30 * months + 7 * weeks + days, hours=hours, minutes=minutes, seconds=seconds)


def parameter_values(definition: dict, given: list[dict[str, str]]) -> dict[str, Any]:
    """Each parameter's value for one execution: the given one (a string on the wire) in the
    parameter's type, else its default."""
    types = {p["Name"]: p.get("Type", "String") for p in definition.get("Parameters", [])}
    values = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    for item in given:
        if item["Name"] not in types:
            raise DefinitionError(f"parameter {item['Name']} is not defined in the pipeline")
        values[item["Name"]] = {"Integer": int, "Float": float, "Boolean": lambda v: v.lower() == "true"}.get(types[item["Name"]], str)(item["Value"])
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise DefinitionError(f"no value for parameter(s) {', '.join(missing)}, which have no default")
    return values


def in_dependency_order(steps: list[dict]) -> list[dict]:
    """`steps` ordered so that each comes after its DependsOn and the steps it refers to."""
    by_name = {step["Name"]: step for step in steps}
    ordered: list[dict] = []
    visiting: set[str] = set()

    def visit(step: dict) -> None:
        if step in ordered:
            return
        if step["Name"] in visiting:
            raise DefinitionError(f"step {step['Name']} depends on itself")
        visiting.add(step["Name"])
        needed = list(step.get("DependsOn", [])) + [ref.split(".")[1] for ref in references(step.get("Arguments", {})) if ref.startswith("Steps.")]
        for name in needed:
            if name in by_name:
                visit(by_name[name])
        ordered.append(step)

    for step in steps:
        visit(step)
    return ordered
