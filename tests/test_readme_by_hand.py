"""The README's "Offline, by hand" commands, run verbatim from the README's own text."""
from __future__ import annotations

import os
import re
import shlex
import subprocess

from tests.helpers import ROOT

PLACEHOLDER = "<arn printed by step 04>"
# What a learner's checkout has; build/ and .localaws/ are this run's own.
SHARED = ("Makefile", "app.py", "cdk.json", "package.json", "package-lock.json", "lab_scripts", "localaws", "stacks",
          "processing", "inference", "requirements.txt", "requirements-dev.txt", "requirements-checkov.txt",
          "requirements-awscli.txt", ".venv", ".image-env", ".tools", "node_modules")


def by_hand_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Offline, by hand"):]
    block = section[section.index("```bash\n") + len("```bash\n"):]
    return [line for line in block[:block.index("```")].splitlines() if line.strip()]


def script(commands: list[str]) -> str:
    """The commands as one shell session (`source` must last), each echoed with its output
    into the transcript; the ARN step 04 prints is copied into the deploy, as a learner does."""
    lines = ["set -eo pipefail"]
    for command in commands:
        if PLACEHOLDER in command:
            lines.append("ARN=$(grep -o 'arn:aws:sagemaker:[a-z0-9-]*:[0-9]*:model-package/[A-Za-z0-9-]*/[0-9]*' step04.out | tail -1)")
            command = command.replace(PLACEHOLDER, "$ARN")
        lines.append(f"echo {shlex.quote('$ ' + command)}")
        output = " | tee step04.out" if "04_evaluate_and_register" in command else ""
        lines.append(f"{command} 2>&1{output}")
    return "\n".join(lines)


def test_the_readme_by_hand_section_runs_verbatim_and_leaves_nothing(tmp_path):
    """Regression: there was no offline destroy, and steps printed `npx cdk deploy|destroy`
    offline, which fails there; the section must run top to bottom and its last audit find
    nothing. Runs in a directory of its own with the checkout's files linked in, so the
    developer's own local AWS (.localaws/) is never touched."""
    commands = by_hand_commands()
    assert commands[0].split("#")[0].strip() == "make local-up" and commands[-1] == "make local-down"
    assert any(PLACEHOLDER in c for c in commands) and any("10_teardown.py --audit-only" in c for c in commands)
    for name in SHARED:
        (tmp_path / name).symlink_to(ROOT / name)
    # A learner's shell: no AWS settings, and not inside `make test` (nested make says
    # "Entering/Leaving directory" around everything).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    # `make local-up` runs `make setup` first: through the links, a stale set-up would be
    # reinstalled under the other tests' feet (`make test` brings it up to date before).
    stale = subprocess.run(["make", "-q", "setup"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert stale.returncode == 0, "the checkout's set-up is out of date: run `make setup` (make test does) first"
    completed = subprocess.run(
        ["bash", "-c", script(commands)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    transcript = completed.stdout + completed.stderr
    try:
        assert completed.returncode == 0, transcript[-4000:]
        assert "Traceback" not in transcript, transcript[-4000:]
        audit = transcript[transcript.rindex("$ .venv/bin/python lab_scripts/10_teardown.py --audit-only"):]
        assert "no leftovers outside the stacks: the lab is gone" in audit, audit
        assert re.search(r"✓ destroyed .*-Endpoint", transcript), transcript[-4000:]
        assert "local AWS stopped" in transcript.splitlines()[-1]
        page = (tmp_path / "build/lab-report/index.html").read_text()
        assert "by hand" in page and "<h2>Where to look</h2>" in page and "not run" not in page
    finally:  # a failed run must not leave its local AWS behind
        subprocess.run(["make", "local-down"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
