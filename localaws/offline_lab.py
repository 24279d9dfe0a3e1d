"""Run the whole lab offline: local AWS up, stacks deployed, every numbered step in order.

Each step runs as its own process with the local AWS's variables in its environment,
exactly as a learner runs it by hand; nothing in a step knows it is offline.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from localaws.cloudformation.deploy import DeployError, deploy_assembly
from localaws.cloudformation.destroy import DestroyError, destroy_stacks
from localaws.server import ACCOUNT_ID, LocalAws
from localaws.step_runner import StepRunner
from localaws.cloudformation.synth import assembly_for

ROOT = Path(__file__).resolve().parent.parent
STEPS_DIR = ROOT / "lab_scripts"
sys.path.insert(0, str(STEPS_DIR))
from labkit import report as lab_report  # noqa: E402  (the lab scripts' package)
from labkit.results import RESULTS_DIR  # noqa: E402  (relative: under the run's work directory)
from labkit.transactions import DAYS  # noqa: E402  (the generated data spans this many days)


@dataclass
class StepResult:
    step: str
    ok: bool
    seconds: float
    key_figure: str


@dataclass
class LabRun:
    """One offline run: the local AWS, the steps' environment, where they work, what was synthesized."""

    local: LocalAws
    env: dict[str, str]
    workdir: Path
    assembly: Path  # every stack, the endpoint's for the predicted model package
    steps: StepRunner  # starts each step from a warm interpreter (step_runner.py)

    def recorded(self, step: str) -> dict:
        path = self.workdir / RESULTS_DIR / f"{step}.json"
        return json.loads(path.read_text()) if path.exists() else {}


class AfterStepError(Exception):
    """A command between steps failed; str() says which and why."""


def step_arguments(step: str, size: int) -> list[str]:
    """How the lab size reaches the steps that take one. The alert budget scales with the
    data as a fraud team's does: about 1 % of a day's payments, at most step 04's default 100."""
    alert_budget = ["--alerts-per-day", str(max(1, min(100, round(size / DAYS / 100))))]
    return {
        "01_stream_transactions": ["--count", str(size)],
        "04_evaluate_and_register": alert_budget,
        "08_monitor_drift": ["--requests", str(max(2, min(10, size // 2000)))],
        "07_run_pipeline": alert_budget,  # the same gate as step 04's
        "09_safe_deployment": ["--requests", "1000"],  # the split's tolerance at 1,000 is ±3 points
    }.get(step, [])


def _context(key: str) -> str:
    return json.loads((ROOT / "cdk.json").read_text())["context"][f"fraudlab:{key}"]


def predicted_package_arn(region: str) -> str:
    """On a fresh local AWS the model step 04 approves is version 1 of the group."""
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:model-package/{_context('modelPackageGroupName')}/1"


def deploy_endpoint_stack(run: LabRun) -> str:
    """What the learner does after step 04: `cdk deploy --all -c fraudlab:modelPackageArn=<arn>`."""
    arn = run.recorded("04_evaluate_and_register")["model_package_arn"]
    print(f"\n### cdk deploy --all -c fraudlab:modelPackageArn={arn}", flush=True)
    assembly = run.assembly
    if arn != predicted_package_arn(run.local.region):
        assembly = assembly_for({"fraudlab:modelPackageArn": arn})
    created = []
    try:
        for deployed in deploy_assembly(assembly, run.local.session()):
            if deployed.name.endswith(("-Endpoint", "-Monitoring")):  # the others exist already
                print(f"✓ {deployed.name}: {len(deployed.created)} resources", flush=True)
                created.append(f"{deployed.name.split('-', 1)[1]} {len(deployed.created)}")
    except DeployError as error:
        raise AfterStepError(str(error)) from None
    return "resources: " + ", ".join(created)


def destroy_and_audit(run: LabRun) -> str:
    """After the teardown step: `cdk destroy --all`, then the audit again, which must find nothing."""
    print("\n### cdk destroy --all", flush=True)
    try:
        destroyed = destroy_stacks(run.local.session(), run.env.get("FRAUDLAB_STACK_PREFIX") or _context("stackPrefix"))
    except DestroyError as error:
        raise AfterStepError(f"cdk destroy: {error}") from None
    print(f"✓ destroyed {', '.join(destroyed)}", flush=True)
    print("\n### 10_teardown --audit-only", flush=True)
    completed = _run(STEPS_DIR / "10_teardown.py", ["--audit-only"], run)
    if completed.returncode != 0:
        raise AfterStepError(f"audit after destroy: {_reason(completed)}")
    return f"{len(destroyed)} stacks destroyed; " + run.recorded("10_teardown")["key_figure"]


# Between some steps a learner runs a command that is not a lab script: (label, command).
AFTER_STEP = {
    "04_evaluate_and_register": ("cdk deploy (endpoint, monitoring)", deploy_endpoint_stack),
    "10_teardown": ("cdk destroy + audit", destroy_and_audit),
}


def _run(path: Path, arguments: list[str], run: LabRun) -> subprocess.CompletedProcess:
    """Run a step; its output shows as it runs, its error output after it (kept for the summary)."""
    completed = run.steps.run(path, arguments, run.workdir, run.env)
    if completed.stderr:
        print(completed.stderr, end="", file=sys.stderr, flush=True)
    return completed


def _reason(completed: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (completed.stderr or "").splitlines() if line.strip()]
    return f"exit code {completed.returncode}: {lines[-1][:160]}" if lines else f"exit code {completed.returncode}"


class LabInterrupted(Exception):
    """Ctrl-C: the step running was stopped; `results` holds what ran, that step last."""

    def __init__(self, results: list[StepResult]) -> None:
        super().__init__("interrupted")
        self.results = results


INTERRUPTED_NOTE = "interrupted (Ctrl-C): rerun `make lab`, or the step by hand"
INTERRUPTED_EXIT = 130  # the shell's code for a Ctrl-C


def run_steps(run: LabRun, size: int, steps: list[Path] | None = None) -> list[StepResult]:
    """Run the numbered steps in order; stop at the first failure (later steps need it).
    Ctrl-C stops the step running and raises LabInterrupted with what ran."""
    results: list[StepResult] = []
    current, started = "", time.monotonic()
    try:
        for path in steps or sorted(STEPS_DIR.glob("[0-9][0-9]_*.py")):
            current, started = path.stem, time.monotonic()
            print(f"\n### {path.stem}", flush=True)
            completed = _run(path, step_arguments(path.stem, size), run)
            ok = completed.returncode == 0
            # A step that fails may still have recorded what it found (the audit does).
            recorded = run.recorded(path.stem).get("key_figure", "")
            key_figure = recorded if ok else "; ".join(filter(None, (_reason(completed), recorded)))
            results.append(StepResult(path.stem, ok, time.monotonic() - started, key_figure))
            if not ok:
                break
            if path.stem in AFTER_STEP:
                label, command = AFTER_STEP[path.stem]
                current, started = label, time.monotonic()
                try:
                    figure = command(run)
                except AfterStepError as error:
                    results.append(StepResult(label, False, time.monotonic() - started, str(error)))
                    break
                results.append(StepResult(label, True, time.monotonic() - started, figure))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup that follows runs to its end
        results.append(StepResult(current, False, time.monotonic() - started, INTERRUPTED_NOTE))
        raise LabInterrupted(results) from None
    return results


def run_lab(size: int, workdir: Path = ROOT) -> int:
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)  # the steps run in it
    for stale in (workdir / RESULTS_DIR).glob("*.json"):
        stale.unlink()
    print("== Synthesize the CDK app (cdk-nag enforced; reused while its inputs are unchanged)", flush=True)
    interrupted = False
    try:
        with LocalAws() as local:
            # One synthesis for the whole lab: the endpoint and monitoring stacks for the model
            # step 04 will approve (predictable offline) are in it, deployed only after step 04.
            # The other stacks' templates do not depend on that ARN (tested).
            overrides = {"fraudlab:modelPackageArn": predicted_package_arn(local.region)}
            env = {**os.environ, **local.environment()}
            steps = StepRunner(env)
            try:
                run = LabRun(local, env, workdir, assembly_for(overrides), steps)
                results = deploy_base_stacks(run)
                if not results:  # deployed: the steps, in order
                    results = run_steps(run, size)
            finally:
                steps.close()
    except LabInterrupted as stop:
        results, interrupted = stop.results, True
    except KeyboardInterrupt:  # before the first step: synthesis or deployment
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        results, interrupted = [StepResult("set-up (synth, deploy)", False, time.monotonic() - started, INTERRUPTED_NOTE)], True
    total = time.monotonic() - started
    print_summary(results, total)
    page = lab_report.build(
        [(r.step, r.ok, r.seconds, r.key_figure) for r in results],
        title=f"FraudLab offline lab ({size:,} transactions, {total:.0f} s)",
        root=workdir,
    )
    print(f"\n  report: {page} (open it in a browser)")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\n✗ lab stopped at {failed[0].step}: {failed[0].key_figure} (its output is above)")
        return INTERRUPTED_EXIT if interrupted else 1
    return 0


def deploy_base_stacks(run: LabRun) -> list[StepResult]:
    """`cdk deploy --all` before step 00 (network, data, platform); a failure as a result."""
    started = time.monotonic()
    base = {f"{_context('stackPrefix')}-{name}" for name in ("Network", "Data", "MLPlatform")}
    print(f"== Local AWS at {run.local.endpoint_url}: deploying the stacks", flush=True)
    try:
        for deployed in deploy_assembly(run.assembly, run.local.session(), only=base):
            print(deployed.summary(), flush=True)
    except DeployError as error:
        return [StepResult("cdk deploy (network, data, platform)", False, time.monotonic() - started, str(error))]
    return []


def print_summary(results: list[StepResult], total_seconds: float) -> None:
    print("\n== Lab summary")
    width = max([len(r.step) for r in results] + [4])
    print(f"  {'step'.ljust(width)}  status  {'time':>6}  key figure")
    for r in results:
        print(f"  {r.step.ljust(width)}  {'ok' if r.ok else 'FAILED':6}  {r.seconds:5.1f}s  {r.key_figure}")
    print(f"  total {total_seconds:.1f}s")


SUMMARY_ROW = re.compile(r"^  (.+?)\s{2,}(ok|FAILED)\s+([\d.]+)s  (.*)$")


def read_summary(output: str) -> dict[str, tuple[str, float, str]]:
    """print_summary's table read back from a lab's output: step -> (status, seconds, key figure)."""
    table = output.split("== Lab summary", 1)[-1] if "== Lab summary" in output else ""
    return {row.group(1): (row.group(2), float(row.group(3)), row.group(4))
            for row in map(SUMMARY_ROW.match, table.splitlines()) if row}
