"""`python -m localaws lab` (make lab) as a learner runs it: its summary, a failing step,
the sizes it refuses, and the deploy after step 04. The whole lab's run and what it leaves
(report, results, step 09's figures) are checked on the suite's one whole run, the README's
by hand (test_readme_by_hand.py); Ctrl-C of the lab is in test_faults_processes.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from localaws import offline_lab
from localaws.cloudformation.deploy import DeployError, StackReport
from localaws.offline_lab import AfterStepError, LabRun, StepResult, deploy_endpoint_stack, predicted_package_arn, print_summary, read_summary
from tests.helpers import ROOT, isolated_env


def test_the_summary_reads_back_as_it_was_printed(capsys):
    """read_summary (this module and bench/lab.py read the table with it) against print_summary."""
    print_summary([StepResult("00_preflight", True, 0.44, "3 stacks ready"), StepResult("cdk deploy (endpoint, monitoring)", False, 12.0, "")], 12.44)
    assert read_summary(capsys.readouterr().out) == {"00_preflight": ("ok", 0.4, "3 stacks ready"), "cdk deploy (endpoint, monitoring)": ("FAILED", 12.0, "")}


def lab(workdir, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m localaws lab` as make lab starts it, in a learner's environment (plus `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "localaws", "lab", *arguments, "--workdir", str(workdir)],
        cwd=ROOT, env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **isolated_env(**env)},
        capture_output=True, text=True, timeout=300,
    )


def test_a_failing_step_stops_the_lab_and_says_why(tmp_path):
    """A step that really fails (step 00 looks for stacks under a prefix nobody deployed):
    the lab runs no later step, its summary names the step and the step's own one-line
    reason, the report shows the failure, and make lab exits 1."""
    workdir = tmp_path / "not-yet-made"  # --workdir is created (every step failed in a missing one)
    completed = lab(workdir, "--size", "1000", FRAUDLAB_STACK_PREFIX="NotDeployed")
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    rows = read_summary(completed.stdout)
    assert list(rows) == ["00_preflight"] and rows["00_preflight"][0] == "FAILED", rows
    assert "stack NotDeployed-Network is not deployed: run `python -m localaws deploy`" in completed.stdout
    assert rows["00_preflight"][2].startswith("exit code 1"), rows
    assert "### 01_stream_transactions" not in completed.stdout
    assert "✗ lab stopped at 00_preflight: exit code 1" in completed.stdout
    assert "Warning" not in completed.stdout + completed.stderr  # regression: moto's UserWarning in every make lab
    page = (workdir / "build/lab-report/index.html").read_text()
    assert '<tr><td>00_preflight</td><td class="failed">FAILED</td>' in page and "<td>01_stream_transactions</td>" not in page


def test_a_size_too_small_to_split_is_refused_before_anything_runs(tmp_path):
    completed = lab(tmp_path, "--size", "50")
    assert completed.returncode == 2  # argparse: sizes under 100 are refused before anything runs
    assert "--size must be at least 100" in completed.stderr
    assert not (tmp_path / "build").exists()


def test_the_deploy_after_step_04_uses_the_recorded_package_and_reports_what_it_made(tmp_path, monkeypatch, capsys):
    """make lab's `cdk deploy --all -c fraudlab:modelPackageArn=<arn>` after step 04
    (deploy_endpoint_stack): the run's own assembly when step 04 recorded the predicted
    version 1, else one synthesized for the recorded ARN; the resources of the two new stacks;
    a stack that fails as one line. (Deploying the endpoint stack itself is the README's
    `localaws deploy`, run by test_readme_by_hand.)"""
    deployed, synthesized = [], []

    def deploy(assembly, session):
        deployed.append(assembly)
        if session == "failing":
            raise DeployError("FraudLab-Endpoint: Endpoint failed: the model package is not approved")
        return [StackReport("FraudLab-Network", "UPDATE_COMPLETE"), StackReport("FraudLab-Endpoint", "CREATE_COMPLETE", {"Endpoint": "AWS::SageMaker::Endpoint", "Config": "AWS::SageMaker::EndpointConfig"}),
                StackReport("FraudLab-Monitoring", "CREATE_COMPLETE", {"Alarm": "AWS::CloudWatch::Alarm"})]

    monkeypatch.setattr(offline_lab, "deploy_assembly", deploy)
    monkeypatch.setattr(offline_lab, "assembly_for", lambda overrides: synthesized.append(overrides) or Path("for-the-arn"))
    results = tmp_path / "build/lab-results"
    results.mkdir(parents=True)

    def run_with(arn: str, session: str = "local") -> LabRun:
        (results / "04_evaluate_and_register.json").write_text(json.dumps({"model_package_arn": arn}))
        return LabRun(SimpleNamespace(region="us-east-1", session=lambda: session), {}, tmp_path, Path("the-runs-own"), steps=None)

    predicted = predicted_package_arn("us-east-1")
    assert deploy_endpoint_stack(run_with(predicted)) == "resources: Endpoint 2, Monitoring 1"
    out = capsys.readouterr().out
    assert f"### cdk deploy --all -c fraudlab:modelPackageArn={predicted}" in out and "✓ FraudLab-Endpoint: 2 resources" in out
    assert "FraudLab-Network" not in out and deployed == [Path("the-runs-own")] and synthesized == []

    other = predicted.removesuffix("/1") + "/2"
    deploy_endpoint_stack(run_with(other))
    assert synthesized == [{"fraudlab:modelPackageArn": other}] and deployed[-1] == Path("for-the-arn")
    with pytest.raises(AfterStepError, match="FraudLab-Endpoint: Endpoint failed: the model package is not approved"):
        deploy_endpoint_stack(run_with(predicted, session="failing"))
