"""Steps forked from the warm interpreter start as `python script.py args` would start them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from localaws.step_runner import StepRunner

PROBE = """
import json, os, sys
print("to stdout")
print("to stderr", file=sys.stderr)
json.dump({"argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "name": __name__, "file": __file__,
           "env": os.environ.get("PROBE_VALUE"), "leaked": os.environ.get("ONLY_IN_THE_RUNNER")}, open("seen.json", "w"))
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def runner():
    steps = StepRunner({**os.environ, "ONLY_IN_THE_RUNNER": "1"})
    yield steps
    steps.close()


def direct_and_forked(runner, tmp_path, script: str, *arguments: str) -> list[tuple[int, str, dict | None]]:
    """(exit code, stderr, what the script saw) started by the interpreter, then by the runner."""
    path = tmp_path / "scripts" / "probe.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(script)
    outcomes = []
    for how in ("direct", "forked"):
        work = tmp_path / how
        work.mkdir()
        env = {"PATH": os.environ["PATH"], "PROBE_VALUE": how}
        if how == "direct":
            done = subprocess.run([sys.executable, str(path), *arguments], cwd=work, env=env, capture_output=True, text=True)
            code, stderr = done.returncode, done.stderr
        else:
            done = runner.run(path, list(arguments), work, env)
            code, stderr = done.returncode, done.stderr
        seen = json.loads((work / "seen.json").read_text()) if (work / "seen.json").exists() else None
        outcomes.append((code, stderr, seen))
    return outcomes


def test_argv_cwd_path_env_and_exit_code_are_the_interpreters(runner, tmp_path):
    (direct_code, direct_err, direct), (code, err, forked) = direct_and_forked(runner, tmp_path, PROBE, "3", "--flag")
    assert code == direct_code == 3 and err == direct_err == "to stderr\n"
    assert forked["argv"] == direct["argv"] and forked["path0"] == direct["path0"] and forked["name"] == "__main__"
    assert forked["cwd"].endswith("forked") and forked["env"] == "forked"
    assert forked["leaked"] is None  # the step's environment only, nothing of the runner's


def test_an_uncaught_exception_exits_1_with_its_traceback(runner, tmp_path):
    (direct_code, direct_err, _), (code, err, _) = direct_and_forked(runner, tmp_path, "raise ValueError('boom')\n")
    assert code == direct_code == 1
    assert "ValueError: boom" in err and err.startswith("Traceback") and direct_err.startswith("Traceback")


def test_a_message_to_sys_exit_is_printed_and_exits_1(runner, tmp_path):
    outcomes = direct_and_forked(runner, tmp_path, "import sys\nsys.exit('no stack: run cdk deploy')\n")
    assert [(code, err) for code, err, _ in outcomes] == [(1, "no stack: run cdk deploy\n")] * 2


def test_a_step_past_its_timeout_is_killed_and_the_runner_goes_on(runner, tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import time\ntime.sleep(60)\n")
    with pytest.raises(TimeoutError, match="sleeper.py still running"):
        runner.run(script, [], tmp_path, {"PATH": os.environ["PATH"]}, timeout=0.5)
    (tmp_path / "ok.py").write_text("print('next')\n")
    done = runner.run(tmp_path / "ok.py", [], tmp_path, {}, capture_stdout=True)
    assert done.returncode == 0
    assert done.stdout == "next\n"


def test_ctrl_c_stops_the_step_not_the_runner(runner, tmp_path):
    script = tmp_path / "interrupted.py"
    # What Ctrl-C does to the two: SIGINT to the step and to the runner (its parent).
    script.write_text("import os, signal, time\nos.kill(os.getppid(), signal.SIGINT)\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n")
    assert runner.run(script, [], tmp_path, {}, timeout=30).returncode == 130
    (tmp_path / "ok.py").write_text("")
    assert runner.run(tmp_path / "ok.py", [], tmp_path, {}).returncode == 0
