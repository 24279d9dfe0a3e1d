"""Every expected condition a learner meets is one line that says what to do, and a non-zero
exit: each step run before the step it needs, and the local AWS's own commands."""
from __future__ import annotations

import subprocess
import sys

import pytest

from localaws.cloudformation.deploy import deploy_assembly
from localaws.server import LocalAws
from tests.helpers import ROOT, isolated_env, run_step


@pytest.fixture(scope="module")
def fresh_lab(assembly):
    """The stacks deployed, nothing run yet (a region of its own: as empty as a new account)."""
    with LocalAws(region="eu-west-2") as server:
        deploy_assembly(assembly, server.session())
        yield server


@pytest.mark.parametrize("script, message", [
    ("02_feature_engineering.py", "no transactions under s3://"),
    ("03_train_model.py", "no features yet: run lab_scripts/02_feature_engineering.py first"),
    ("04_evaluate_and_register.py", "no trained model yet: run lab_scripts/03_train_model.py first"),
    ("05_deploy_endpoint.py", "no approved model yet: run lab_scripts/04_evaluate_and_register.py first"),
    ("06_score_transactions.py", "no endpoint yet: run lab_scripts/05_deploy_endpoint.py first"),
    ("08_monitor_drift.py", "no endpoint yet: run lab_scripts/05_deploy_endpoint.py first"),
])
def test_a_step_run_too_early_names_the_step_to_run(fresh_lab, tmp_path, script, message):
    """Regression: steps 06 and 07 printed a botocore traceback; step 02 did not point to step 01."""
    result = run_step(script, isolated_env(**fresh_lab.environment()), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith(f"✗ {message}"), result.stderr
    if script == "02_feature_engineering.py":
        assert "run lab_scripts/01_stream_transactions.py first" in result.stderr


def test_a_model_left_pending_says_how_to_approve_it(fresh_lab, tmp_path):
    """A model that did not beat the rule by the margin stays PendingManualApproval: step 05
    names it and the reviewer's command, instead of sending the learner back to step 04."""
    sagemaker = fresh_lab.session().client("sagemaker")
    group = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"][0]["ModelPackageGroupName"]
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "xgboost:3.2-0", "ModelDataUrl": "s3://bucket/model.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    try:
        result = run_step("05_deploy_endpoint.py", isolated_env(**fresh_lab.environment()), cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
        assert f"{arn} is PendingManualApproval" in result.stderr
        assert f"aws sagemaker update-model-package --model-package-arn {arn} --model-approval-status Approved" in result.stderr
    finally:
        sagemaker.delete_model_package(ModelPackageName=arn)


def test_localaws_deploy_without_a_local_aws_is_one_line_before_any_synthesis():
    """Regression: `python -m localaws deploy` printed a traceback; then it synthesized first
    and said so only after it (the context here would fail synthesis with its own error)."""
    env = {**isolated_env(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y"),
           "AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "localaws", "deploy", "-c", "fraudlab:maxAzs=three"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip() == "✗ no local AWS at http://127.0.0.1:9/: start one with `make local-up`, then `source .localaws/env`", result.stderr
