"""Shared fixtures: the CDK app's assembly (synthesized once per machine and source), and one local AWS with it deployed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import stacks  # noqa: F401  (before any CDK import: jsii runs on the pinned Node, see stacks/__init__.py)
from localaws.cloudformation.deploy import deploy_assembly
from localaws.server import LocalAws
from localaws.cloudformation.synth import assembly_for
from tests.helpers import PACKAGE_ARN, ROOT, close_step_runner

# Every assembly the suite synthesizes, in the order the tests first need them. A whole run
# makes them first, in one process of its own (synth.prewarm), where on a cold cache each
# worker paid its first in-process synthesis and each lab subprocess a synthesis child. A
# worker that needs one before the prewarm reaches it makes it itself. Kept in step with the
# tests by hand: one missing here is synthesized where it is first needed, slower, never wrong.
SUITE_CONTEXTS = [
    {},
    {"fraudlab:modelPackageArn": PACKAGE_ARN},  # the lab's own deploy (step 04's first version)
    {"fraudlab:interfaceEndpoints": "true"},
    {"fraudlab:modelPackageArn": PACKAGE_ARN, "fraudlab:serverless": "true"},
    {"fraudlab:modelPackageArn": PACKAGE_ARN, "fraudlab:driftMonitor": "modelMonitor"},
    {"fraudlab:modelPackageArn": PACKAGE_ARN, "fraudlab:driftMonitor": "modelMonitor", "fraudlab:driftScheduleHours": "6"},
    {"fraudlab:modelPackageArn": PACKAGE_ARN, "fraudlab:driftMonitor": "off"},
    {"fraudlab:stackPrefix": "FaultLab"},
    {"fraudlab:stackPrefix": "TeardownLab", "fraudlab:modelPackageGroupName": "teardown-lab"},
]
_PREWARM: list[subprocess.Popen] = []


def pytest_sessionstart(session):
    """A whole run (pytest's testpaths, as make test runs it) starts the prewarm, once: in the
    controller, beside the workers. A run of a few modules, or one selected with -m or -k,
    synthesizes only what it needs."""
    config = session.config
    whole = config.args_source == pytest.Config.ArgsSource.TESTPATHS and not (config.option.markexpr or config.option.keyword or config.option.collectonly)
    if not hasattr(config, "workerinput") and whole:
        _PREWARM.append(subprocess.Popen(
            [sys.executable, "-m", "localaws.cloudformation.synth", "--prewarm", json.dumps(SUITE_CONTEXTS)], cwd=ROOT))


def pytest_sessionfinish(session):
    for prewarm in _PREWARM:  # long done in a whole run; a synthesis cut short would leave a scratch dir
        prewarm.wait()


# What must stay slow: each runs the lab's real pieces end to end (the suite's one whole lab,
# the README by hand, with the checks of it live; serving containers started as
# SageMaker starts them; checkov). Longest first (`pytest --durations=10` shows the order).
SLOW_MODULES = ("test_readme_by_hand", "test_endpoint_variants", "test_compliance", "test_container_conformance")


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
