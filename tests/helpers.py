"""Helpers for tests that run lab scripts the way a learner does."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from labkit.model_artifact import ENVIRONMENT
from localaws.cloudformation.synth import assembly_for
from localaws.offline_lab import predicted_package_arn
from localaws.step_runner import StepRunner

# The serving environment of the tests' own models: one gunicorn worker, set with the serving
# stack's own variable (sagemaker-containers reads SAGEMAKER_MODEL_SERVER_WORKERS; without it,
# one worker per CPU). Tests send one request at a time, and each worker costs a start of its
# own; the lab's models keep the default, as on an instance.
TEST_MODEL_ENVIRONMENT = {**ENVIRONMENT, "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}

ROOT = Path(__file__).resolve().parent.parent

# What step 04 registers first on a fresh local AWS in the lab's region (so the lab's own
# deploy synthesizes with it), and what the stack tests synthesize the endpoint with: they
# share those assemblies.
PACKAGE_ARN = predicted_package_arn("us-east-1")


def endpoint_assembly(**overrides: str) -> Path:
    """The cached assembly with the endpoint (PACKAGE_ARN) and `overrides` (fraudlab:<key>)."""
    return assembly_for({"fraudlab:modelPackageArn": PACKAGE_ARN, **{f"fraudlab:{k}": v for k, v in overrides.items()}})


_RUNNER: list[StepRunner] = []  # one warm interpreter for the whole session (step_runner.py)


def run_step(script: str, env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a numbered lab script as a learner would, with exactly `env` (plus PATH): forked
    from a warm interpreter, as `make lab` runs it (tests/test_step_runner.py shows the two
    starts are the same)."""
    full_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return step_runner().run(ROOT / "lab_scripts" / script, list(args), cwd, full_env, capture_stdout=True, timeout=300)


def step_runner() -> StepRunner:
    """The session's warm interpreter (started on first use)."""
    if not _RUNNER:
        _RUNNER.append(StepRunner(dict(os.environ)))
    return _RUNNER[0]


def close_step_runner() -> None:
    if _RUNNER:
        _RUNNER.pop().close()


def isolated_env(**overrides: str) -> dict[str, str]:
    """An environment with no AWS configuration from this machine leaking in."""
    return {
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        **overrides,
    }


def cfn_lint(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *map(str, paths)], capture_output=True, text=True, timeout=300
    )


def outputs_of(server) -> dict[str, str]:
    """Every output of every stack deployed in `server`'s region (the local AWS)."""
    stacks = server.session().client("cloudformation").describe_stacks()["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for stack in stacks for o in stack.get("Outputs", [])}


def load_step(script: str):
    """A numbered lab script as a module (its name starts with a digit)."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py").replace("0", "step0", 1), ROOT / "lab_scripts" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAGEMAKER_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def sagemaker_role(session, name: str) -> str:
    """The ARN of a role SageMaker may assume that is allowed every action, made once: for tests
    of what the local AWS runs, not of IAM (test_iam.py and the lab's own roles test that)."""
    iam = session.client("iam")
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(SAGEMAKER_TRUST))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="everything", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        return arn
