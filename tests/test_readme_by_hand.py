"""The README's "Offline, by hand" commands, run verbatim from the README's own text: the
suite's one whole lab (steps 00-10, destroy, audit, report). The tests that read a whole
run's results (the report, step 09's figures, the results files) read this one."""
from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT

PLACEHOLDER = "<arn printed by step 04>"
# What a learner's checkout has; build/ and .localaws/ are this run's own.
SHARED = ("Makefile", "app.py", "cdk.json", "package.json", "package-lock.json", "lab_scripts", "localaws", "stacks",
          "processing", "inference", "requirements.txt", "requirements-dev.txt", "requirements-checkov.txt",
          "requirements-awscli.txt", ".venv", ".image-env", ".tools", "node_modules")
STEPS = [path.stem for path in sorted((ROOT / "lab_scripts").glob("[0-9][0-9]_*.py"))]


def by_hand_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Offline, by hand"):]
    block = section[section.index("```bash\n") + len("```bash\n"):]
    return [line for line in block[:block.index("```")].splitlines() if line.strip()]


def option(step: str, name: str, default: str) -> str:
    """The value the README passes to a step's option (the step's default if it passes none)."""
    command = next(c for c in by_hand_commands() if f"lab_scripts/{step}.py" in c)
    words = shlex.split(command.split("#")[0])
    return words[words.index(name) + 1] if name in words else default


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
        lines.append(f"{command.split(' #')[0].rstrip()} 2>&1{output}")  # a trailing comment would swallow the redirection
    return "\n".join(lines)


@pytest.fixture(scope="module")
def by_hand(tmp_path_factory):
    """(transcript, exit code, the directory it ran in). Runs in a directory of its own with
    the checkout's files linked in, so the developer's own local AWS (.localaws/) is never
    touched."""
    workdir = tmp_path_factory.mktemp("by-hand")
    for name in SHARED:
        (workdir / name).symlink_to(ROOT / name)
    # A learner's shell: no AWS settings, and not inside `make test` (nested make says
    # "Entering/Leaving directory" around everything).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    # `make local-up` runs `make setup` first: through the links, a stale set-up would be
    # reinstalled under the other tests' feet (`make test` brings it up to date before).
    stale = subprocess.run(["make", "-q", "setup"], cwd=workdir, env=env, capture_output=True, timeout=60)
    assert stale.returncode == 0, "the checkout's set-up is out of date: run `make setup` (make test does) first"
    try:
        completed = subprocess.run(
            ["bash", "-c", script(by_hand_commands())], cwd=workdir, env=env, capture_output=True, text=True, timeout=900,
        )
    finally:  # a failed run must not leave its local AWS behind
        subprocess.run(["make", "local-down"], cwd=workdir, env=env, capture_output=True, timeout=60)
    return completed.stdout + completed.stderr, completed.returncode, workdir


def results_of(workdir, step: str) -> dict:
    return json.loads((workdir / "build/lab-results" / f"{step}.json").read_text())


def test_the_section_is_the_whole_lab_in_order():
    commands = by_hand_commands()
    assert commands[0].split("#")[0].strip() == "make local-up" and commands[-1] == "make local-down"
    assert any(PLACEHOLDER in c for c in commands) and any("10_teardown.py --audit-only" in c for c in commands)
    run = [re.search(r"lab_scripts/(\d\d_\w+)\.py", c).group(1) for c in commands if re.search(r"lab_scripts/\d\d_", c)]
    assert run[:len(STEPS)] == STEPS and run[len(STEPS):] == ["10_teardown"]  # then the audit after destroy


def test_the_readme_by_hand_section_runs_verbatim_and_leaves_nothing(by_hand):
    """Regression: there was no offline destroy, and steps printed `npx cdk deploy|destroy`
    offline, which fails there; the section must run top to bottom and its last audit find
    nothing."""
    transcript, code, workdir = by_hand
    assert code == 0, transcript[-4000:]
    assert "Traceback" not in transcript, transcript[-4000:]
    assert "Warning" not in transcript  # regression: moto's UserWarning in every run
    audit = transcript[transcript.rindex("$ .venv/bin/python lab_scripts/10_teardown.py --audit-only"):]
    assert "no leftovers outside the stacks: the lab is gone" in audit, audit
    assert re.search(r"✓ destroyed .*-Endpoint", transcript), transcript[-4000:]
    assert "local AWS stopped" in transcript.splitlines()[-1]
    page = (workdir / "build/lab-report/index.html").read_text()
    assert "by hand" in page and "<h2>Where to look</h2>" in page and "not run" not in page


def test_every_step_recorded_its_key_figure(by_hand):
    _, _, workdir = by_hand
    figures = {step: results_of(workdir, step)["key_figure"] for step in STEPS}
    count = int(option("01_stream_transactions", "--count", "100000"))
    assert figures["01_stream_transactions"].startswith(f"{count:,} records landed, 0 unexpected duplicates")
    assert "alarm ALARM" in figures["08_monitor_drift"]
    assert figures["10_teardown"] == "0 leftovers, 0 resources in 0 stacks"  # the audit after destroy wrote last


def test_the_report_shows_every_part_of_the_lab(by_hand):
    _, _, workdir = by_hand
    page = (workdir / "build/lab-report/index.html").read_text()
    for section in ("Architecture", "Data landed and features", "Model", "Endpoint", "Drift monitoring", "Teardown"):
        assert f"<h2>{section}</h2>" in page
    for plot in ("pr_curve.png", "roc_curve.png", "confusion_matrix.png", "feature_importance.png"):
        assert f'src="{plot}"' in page and (workdir / "build/lab-report" / plot).stat().st_size > 1000
    assert "completeness_check" in page and "categorical_values_check" in page
    # Issue 12: the model section gives intervals, card precision at the budget, per-scenario recall and why.
    assert re.search(r"<td>\d\.\d{3} \[\d\.\d{2}, \d\.\d{2}\]</td>", page) and "card precision at" in page
    assert "fraud scenario" in page and "accuracy rewards doing nothing" in page and "Hardest scenarios" in page
    # Regression: the page explained nothing, linked nothing and had no run facts or drift plot.
    for section in ("This run", "Where to look"):
        assert f"<h2>{section}</h2>" in page
    count = int(option("01_stream_transactions", "--count", "100000"))
    assert "seed 7" in page and f"{count:,}" in page and "USD " in page and "XGBoost image 3.2-0" in page
    assert page.count('<td class="why">') >= 20
    assert re.search(r"aws --endpoint-url http://127\.0\.0\.1:\d+ --region us-east-1 s3 ls s3://\S+/features/", page)
    assert '<svg role="img" aria-label="drift distance per feature' in page and "threshold 0.1" in page


def browser() -> str | None:
    return next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)


def test_the_report_in_a_real_browser_loads_every_image_and_has_no_blank_band(by_hand, tmp_path):
    """Headless Chromium renders the page: every image loads, the page is as tall as its
    content, and no band of it is blank (a missing plot or an empty section would be)."""
    chromium = browser()
    if chromium is None:
        if os.environ.get("FRAUDLAB_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (FRAUDLAB_REQUIRE_BROWSER): .ci/run installs it from Debian's packages")
        pytest.skip("Chromium not installed (`apt install chromium`): the report's browser test needs it; CI installs it")
    _, _, workdir = by_hand
    report = workdir / "build/lab-report"
    probe = tmp_path / "probe"
    shutil.copytree(report, probe)
    page = (probe / "index.html").read_text()
    # The probe copy reports what the browser saw in its title, which --dump-dom prints.
    script = ("<script>window.addEventListener('load', () => { document.title = JSON.stringify({"
              "height: document.documentElement.scrollHeight, "
              "images: [...document.images].map(i => i.complete && i.naturalWidth > 0), "
              "svgs: document.querySelectorAll('svg').length}); });</script>")
    (probe / "index.html").write_text(page.replace("</body>", script + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    # Measured at the screenshot's width: a narrower window makes a taller page.
    dom = subprocess.run([chromium, *flags, "--window-size=1200,800", "--dump-dom", (probe / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    seen = json.loads(html.unescape(re.search(r"<title>(.*?)</title>", dom.stdout).group(1)))
    assert seen["images"] == [True] * 4 and seen["svgs"] == 1, seen
    assert 2500 < seen["height"] < 12000, seen

    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--window-size=1200,{seen['height']}", f"--screenshot={shot}", (report / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("L")
    assert image.size == (1200, seen["height"])
    pixels = np.asarray(image)
    blank = (pixels > 245).all(axis=1)  # rows with nothing drawn on them
    drawn = np.flatnonzero(~blank)
    longest, run = 0, 0
    for row_is_blank in blank[drawn[0]:drawn[-1] + 1]:
        run = run + 1 if row_is_blank else 0
        longest = max(longest, run)
    assert longest < 120, f"a blank band of {longest} px"
    assert seen["height"] - drawn[-1] < 120  # the page ends where its content does


def test_the_drift_step_found_the_clean_window_clean_and_the_drift(by_hand):
    _, _, workdir = by_hand
    drift = results_of(workdir, "08_monitor_drift")
    assert drift["clean_violations"] == 0 and drift["drift_violations"] > 0


def test_safe_deployment_splits_shadows_and_rolls_back_the_failing_canary(by_hand):
    """Step 09 as the README runs it: the A/B split within tolerance of the weights, the
    shadow copied every request and answered no one, the failing canary rolled back by the
    5xx alarm to the endpoint stack's own configuration, which serves again."""
    _, _, workdir = by_hand
    requests = int(option("09_safe_deployment", "--requests", "2000"))
    figures = results_of(workdir, "09_safe_deployment")
    # Binomial: 4.5 standard deviations of the challenger's count at weight 0.1, then 0.5.
    assert sum(figures["ab_split"].values()) == requests
    assert abs(figures["ab_split"]["Challenger"] - requests / 10) <= 4.5 * (requests * 0.09) ** 0.5, figures["ab_split"]
    assert abs(figures["shifted_split"]["Challenger"] - requests / 4) <= 4.5 * (requests / 2 * 0.25) ** 0.5, figures["shifted_split"]
    # Each variant's own CloudWatch count: the challenger's is exactly what it answered; the
    # champion's may hold earlier traffic published late (CloudWatch's figures trail).
    answered = {v: figures["ab_split"][v] + figures["shifted_split"][v] for v in ("AllTraffic", "Challenger")}
    assert figures["variant_invocations"]["Challenger"] == answered["Challenger"]
    assert figures["variant_invocations"]["AllTraffic"] >= answered["AllTraffic"]
    assert all(0 < figures["variant_model_latency_ms"][v] < 1000 for v in answered)  # each variant's own ModelLatency
    assert figures["shadow_answered"] == {"AllTraffic": requests // 2} and figures["shadow_copies"] == requests // 2
    sequence = [what for _, what in figures["rollback_sequence"]]
    assert sequence.index("endpoint Updating") < sequence.index("first failed request (the canary)") < sequence.index("endpoint RollingBack")
    assert any(what.endswith("in ALARM") for what in sequence) and sequence[-1] == "endpoint InService"
    assert figures["rollback_outcomes"]["error 500"] >= 1 and figures["after_rollback"] == {"AllTraffic": 100}
    assert figures["endpoint_config"].startswith("FraudLab-Endpoint-EndpointConfig-")  # CloudFormation's, not one step 09 made
