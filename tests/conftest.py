"""Shared fixtures: the CDK app synthesized once per session, and one local AWS with it deployed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from localaws.cloudformation.deploy import deploy_assembly
from localaws.server import LocalAws
from localaws.cloudformation.synth import synthesize


@pytest.fixture(scope="session")
def lab_app(tmp_path_factory):
    """The CDK app, synthesized once per session (cdk-nag enforced: a violation fails here)."""
    return synthesize(tmp_path_factory.mktemp("cdk") / "cdk.out")


@pytest.fixture(scope="session")
def assembly(lab_app) -> Path:
    return Path(lab_app.outdir)


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
