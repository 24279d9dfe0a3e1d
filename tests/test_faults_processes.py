"""Fault injection, processes: nothing the local AWS starts outlives it, even a SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A local AWS in a process of its own, running a processing job that would sleep for minutes.
LOCAL_AWS_WITH_A_JOB = """
import time
from localaws.server import LocalAws
from tests.helpers import sagemaker_role
local = LocalAws(region="ap-south-1").start()
local.session().client("sagemaker").create_processing_job(
    ProcessingJobName="fraudlab-sleeper", RoleArn=sagemaker_role(local.session(), "any"),
    AppSpecification={"ImageUri": "img", "ContainerEntrypoint": ["python3", "-c", "import time; time.sleep(300)"]},
    ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.t3.medium", "VolumeSizeInGB": 1}},
    StoppingCondition={"MaxRuntimeInSeconds": 600},
)
while not local.jobs.jobs["fraudlab-sleeper"].processes:
    time.sleep(0.05)
print(local.jobs.jobs["fraudlab-sleeper"].processes[0].pid, flush=True)
time.sleep(600)
"""


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs (a zombie has ended: only its exit
    status waits for a parent that may be gone, e.g. where PID 1 does not reap)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_a_killed_local_aws_takes_its_containers_with_it():
    """Regression: SIGKILL of `localaws serve` or the lab runner left its containers running."""
    local_aws = subprocess.Popen(
        [sys.executable, "-c", LOCAL_AWS_WITH_A_JOB], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lab_scripts'}"},
    )
    try:
        job_group = int(local_aws.stdout.readline())
        assert group_alive(job_group)
    finally:
        local_aws.send_signal(signal.SIGKILL)
        local_aws.wait()
    deadline = time.monotonic() + 10
    while group_alive(job_group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(job_group)


def test_ctrl_c_of_the_lab_stops_cleanly_with_the_summary_and_report(tmp_path):
    """Regression: Ctrl-C of `make lab` printed two tracebacks, no summary and no report."""
    # From the synthesis cache: a synthesis runs in a child of its own that has ended before
    # step 00 (synth.assembly_for), so no CDK Node process is in the group at step 02.
    lab = subprocess.Popen(
        [sys.executable, "-m", "localaws", "lab", "--size", "2000", "--workdir", str(tmp_path)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,  # a terminal's process group
        # as from a shell prompt: Ctrl-C not ignored, whatever this test runner inherited
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    for line in lab.stdout:
        seen.append(line)
        if line.startswith("### 02_feature_engineering"):
            break
    os.killpg(lab.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    rest, errors = lab.communicate(timeout=120)
    output = "".join(seen) + rest
    assert lab.returncode == 130, output + errors
    assert "Traceback" not in output + errors, output + errors
    summary = output[output.index("== Lab summary"):]
    assert "00_preflight" in summary and "01_stream_transactions" in summary
    assert "02_feature_engineering  FAILED" in summary and "interrupted (Ctrl-C)" in summary
    assert (tmp_path / "build/lab-report/index.html").exists() and "report:" in output
    assert not group_alive(lab.pid)
