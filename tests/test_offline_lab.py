"""The whole lab as a learner runs it offline: `python -m localaws lab`, steps 00-08, the
summary, the report, and an audit that proves `cdk destroy` left nothing."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, isolated_env

SIZE = 4000
STEPS = [path.stem for path in sorted((ROOT / "lab_scripts").glob("[0-9][0-9]_*.py"))]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("offline-lab")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **isolated_env()}
    completed = subprocess.run(
        [sys.executable, "-m", "localaws", "lab", "--size", str(SIZE), "--workdir", str(workdir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    return completed, workdir


def summary_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """step -> (status, key figure) from the printed summary table."""
    table = stdout.split("== Lab summary", 1)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        found = re.match(r"^  (.+?)\s{2,}(ok|FAILED)\s+[\d.]+s  (.*)$", line)
        if found:
            rows[found.group(1)] = (found.group(2), found.group(3))
    return rows


def test_every_step_runs_and_the_summary_says_so(lab):
    completed, _ = lab
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    rows = summary_rows(completed.stdout)
    assert [step for step in rows if step[:2].isdigit()] == STEPS
    assert all(status == "ok" for status, _ in rows.values()), rows
    assert f"{SIZE:,} records landed" in rows["01_stream_transactions"][1]
    assert "alarm ALARM" in rows["07_monitor_drift"][1]
    assert rows["cdk destroy + audit"][1].endswith("0 leftovers, 0 resources in 0 stacks")
    assert re.search(r"total [\d.]+s", completed.stdout)
    assert "Warning" not in completed.stdout + completed.stderr  # regression: moto's UserWarning in every make lab
    # a lab this small has a handful of test frauds: step 04 says its figures are noise
    assert "frauds in the test set: every figure above moves by 1/" in completed.stdout


def test_the_report_shows_every_part_of_the_lab(lab):
    _, workdir = lab
    page = (workdir / "build/lab-report/index.html").read_text()
    for section in ("Architecture", "Data landed and features", "Model", "Endpoint", "Drift monitoring", "Teardown"):
        assert f"<h2>{section}</h2>" in page
    for plot in ("pr_curve.png", "roc_curve.png", "confusion_matrix.png", "feature_importance.png"):
        assert f'src="{plot}"' in page and (workdir / "build/lab-report" / plot).stat().st_size > 1000
    assert "not run" not in page
    assert "completeness_check" in page and "categorical_values_check" in page


def test_results_files_carry_the_figures(lab):
    _, workdir = lab
    drift = json.loads((workdir / "build/lab-results/07_monitor_drift.json").read_text())
    teardown = json.loads((workdir / "build/lab-results/08_teardown.json").read_text())
    assert drift["clean_violations"] == 0 and drift["drift_violations"] > 0
    assert teardown["leftovers"] == 0 and teardown["in_stacks"] == 0


def test_a_failing_step_stops_the_lab_and_says_why(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **isolated_env()}
    completed = subprocess.run(
        [sys.executable, "-m", "localaws", "lab", "--size", "50", "--workdir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2  # argparse: sizes under 100 are refused before anything runs
    assert "--size must be at least 100" in completed.stderr
