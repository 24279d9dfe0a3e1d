"""Run the whole lab offline: local AWS up, stacks deployed, every numbered step in order.

Each step runs as its own process with the local AWS's variables in its environment,
exactly as a learner runs it by hand; nothing in a step knows it is offline.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from localaws.deploy import DeployError, deploy_assembly
from localaws.server import LocalAws
from localaws.synth import synthesize

ROOT = Path(__file__).resolve().parent.parent
STEPS_DIR = ROOT / "lab_scripts"
RESULTS_DIR = ROOT / "build" / "lab-results"


@dataclass
class StepResult:
    step: str
    ok: bool
    seconds: float
    key_figure: str


def step_arguments(step: str, size: int) -> list[str]:
    """How the lab size reaches the steps that take one."""
    return {"01_stream_transactions": ["--count", str(size)]}.get(step, [])


def deploy_endpoint_stack(local: LocalAws) -> None:
    """What the learner does after step 04: `cdk deploy FraudLab-Endpoint -c fraudlab:modelPackageArn=<arn>`."""
    arn = json.loads((RESULTS_DIR / "04_evaluate_and_register.json").read_text())["model_package_arn"]
    print(f"\n### cdk deploy FraudLab-Endpoint FraudLab-Monitoring -c fraudlab:modelPackageArn={arn}", flush=True)
    assembly = Path(synthesize(ROOT / "build" / "local-cdk.out", {"fraudlab:modelPackageArn": arn}).outdir)
    for report in deploy_assembly(assembly, local.session()):
        if report.name.endswith(("-Endpoint", "-Monitoring")):
            print(f"✓ {report.name}: {len(report.created)} resources", flush=True)


# Between some steps a learner runs a command that is not a lab script.
AFTER_STEP = {"04_evaluate_and_register": deploy_endpoint_stack}


def run_steps(local: LocalAws, env: dict[str, str], size: int, steps: list[Path] | None = None) -> list[StepResult]:
    """Run the numbered steps in order; stop at the first failure (later steps need it)."""
    results = []
    for path in steps or sorted(STEPS_DIR.glob("[0-9][0-9]_*.py")):
        started = time.monotonic()
        print(f"\n### {path.stem}", flush=True)
        completed = subprocess.run(
            [sys.executable, str(path), *step_arguments(path.stem, size)], cwd=ROOT, env=env, check=False
        )
        result_file = RESULTS_DIR / f"{path.stem}.json"
        key_figure = json.loads(result_file.read_text())["key_figure"] if result_file.exists() else ""
        ok = completed.returncode == 0
        results.append(StepResult(path.stem, ok, time.monotonic() - started, key_figure or f"exit code {completed.returncode}"))
        if not ok:
            break
        if path.stem in AFTER_STEP:
            started = time.monotonic()
            try:
                AFTER_STEP[path.stem](local)
            except DeployError as error:
                results.append(StepResult("cdk deploy (endpoint)", False, time.monotonic() - started, str(error)))
                break
    return results


def run_lab(size: int) -> int:
    started = time.monotonic()
    for stale in RESULTS_DIR.glob("*.json"):
        stale.unlink()
    print("== Synthesize the CDK app (cdk-nag enforced)", flush=True)
    assembly = Path(synthesize(ROOT / "build" / "local-cdk.out").outdir)
    with LocalAws() as local:
        env = {**os.environ, **local.environment()}
        print(f"== Local AWS at {local.endpoint_url}: deploying the stacks", flush=True)
        for report in deploy_assembly(assembly, local.session()):
            skipped = f", {len(report.not_emulated)} not emulated" if report.not_emulated else ""
            print(f"✓ {report.name}: {len(report.created)} resources{skipped}", flush=True)
        results = run_steps(local, env, size)
    print_summary(results, time.monotonic() - started)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\n✗ lab stopped at {failed[0].step}: {failed[0].key_figure} (its output is above)")
        return 1
    return 0


def print_summary(results: list[StepResult], total_seconds: float) -> None:
    print("\n== Lab summary")
    width = max([len(r.step) for r in results] + [4])
    print(f"  {'step'.ljust(width)}  status  {'time':>6}  key figure")
    for r in results:
        print(f"  {r.step.ljust(width)}  {'ok' if r.ok else 'FAILED':6}  {r.seconds:5.1f}s  {r.key_figure}")
    print(f"  total {total_seconds:.1f}s")
