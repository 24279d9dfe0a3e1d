"""Helpers for tests that run lab scripts the way a learner does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_step(script: str, env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a numbered lab script as a learner would, with exactly `env` (plus PATH)."""
    full_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [sys.executable, str(ROOT / "lab_scripts" / script), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


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
