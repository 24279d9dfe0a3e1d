"""Shared fixtures: the CDK app's assembly (synthesized once per machine and source), and one local AWS with it deployed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import stacks  # noqa: F401  (before any CDK import: jsii runs on the pinned Node, see stacks/__init__.py)
from localaws.cloudformation.deploy import deploy_assembly
from localaws.server import LocalAws
from localaws.cloudformation.synth import assembly_for
from tests.helpers import close_step_runner


# What must stay slow: each runs the lab's real pieces end to end (the suite's one whole lab,
# the README by hand; the pipeline with a live endpoint; serving containers started as
# SageMaker starts them; checkov). Longest first (`pytest --durations=10` shows the order).
SLOW_MODULES = ("test_readme_by_hand", "test_lab_pipeline", "test_endpoint_variants", "test_compliance", "test_container_conformance")


def schedule_rank(module: str) -> int:
    """Where a test module's tests go in the run: slow modules in SLOW_MODULES' order, then the rest."""
    name = module.rsplit(".", 1)[-1]
    return SLOW_MODULES.index(name) if name in SLOW_MODULES else len(SLOW_MODULES)


def pytest_collection_modifyitems(items):
    """Slow modules first, longest first, marked `slow`: with `-n 3 --dist loadfile
    --no-loadscope-reorder` (make test) the three longest start at once, one per worker, and
    the quick ones fill in around the rest. Three workers on two cores: the lab runs wait on
    containers and jobs much of their time, so a third worker fills it (measured against two
    and four one after another on the same machine)."""
    for item in items:
        if schedule_rank(item.module.__name__) < len(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: schedule_rank(item.module.__name__))


@pytest.fixture(scope="session", autouse=True)
def step_runner():
    """The warm interpreter run_step forks steps from, stopped at the end of the session."""
    yield
    close_step_runner()


@pytest.fixture(scope="session")
def assembly() -> Path:
    """The lab's cloud assembly from the synthesis cache (made by a synthesis with cdk-nag
    enforced: a violation fails there)."""
    return assembly_for()


@pytest.fixture(scope="session")
def templates(assembly) -> dict[str, dict]:
    """Stack short name (Network, Data, MLPlatform) -> template JSON."""
    return {
        path.name.removesuffix(".template.json").split("-", 1)[1]: json.loads(path.read_text())
        for path in assembly.glob("*.template.json")
    }


@pytest.fixture(scope="session")
def local_aws(assembly):
    """A local AWS with every lab stack deployed; yields (server, deploy reports)."""
    with LocalAws() as server:
        reports = deploy_assembly(assembly, server.session())
        yield server, reports


@pytest.fixture(scope="session")
def outputs(local_aws) -> dict[str, str]:
    _, reports = local_aws
    merged: dict[str, str] = {}
    for report in reports:
        merged.update(report.outputs)
    return merged
