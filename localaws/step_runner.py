"""Lab steps started from a warm interpreter: what `python lab_scripts/NN_x.py args` does,
without importing boto3, pandas and numpy again for every step (slow imports, each time).

A zygote process imports them once, then forks one child per step; the child becomes the
step exactly as the interpreter would start it (its argv, sys.path[0] the script's folder,
its environment and working directory, run as __main__) and exits with the step's code.
The steps themselves are unchanged; a learner running them by hand gets the same code.
The zygote has no threads, so forking it is safe (the local AWS, which has many, stays in
the parent). Protocol: one JSON request per line on the zygote's stdin; on the pipe named
by FRAUDLAB_STEP_RESULTS_FD, the child's pid, then its exit code, one line each.
"""
from __future__ import annotations

import contextlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

PRELOADED = ("boto3", "botocore.session", "numpy", "pandas")


class StepRunner:
    """The parent's side: start the zygote, run steps through it, stop it."""

    def __init__(self, env: dict[str, str]) -> None:
        read_end, write_end = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "localaws.step_runner"], stdin=subprocess.PIPE, text=True, pass_fds=(write_end,),
            env={**env, "FRAUDLAB_STEP_RESULTS_FD": str(write_end), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        os.close(write_end)
        self._results, self._pending = read_end, b""

    def run(
        self, script: Path, arguments: list[str], cwd: Path, env: dict[str, str],
        capture_stdout: bool = False, timeout: float | None = None,
    ) -> subprocess.CompletedProcess:
        """Run one step to completion, as subprocess.run would with stderr captured (and
        stdout too if `capture_stdout`, else it goes to this process's stdout); after
        `timeout` seconds it is killed and TimeoutError raised."""
        with tempfile.TemporaryDirectory() as scratch:
            stdout, stderr = Path(scratch) / "stdout", Path(scratch) / "stderr"
            request = {"script": str(script), "arguments": arguments, "cwd": str(cwd), "env": env,
                       "stderr": str(stderr), "stdout": str(stdout) if capture_stdout else None}
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            pid = int(self._line())
            try:
                code = self._line(timeout)
            except KeyboardInterrupt:
                self._stop_interrupted(pid)
                raise
            if code is None:
                os.kill(pid, signal.SIGKILL)
                self._line()
                raise TimeoutError(f"{script.name} still running after {timeout:.0f} s: killed")
            return subprocess.CompletedProcess(
                [sys.executable, str(script), *arguments], int(code),
                stdout.read_text(errors="replace") if capture_stdout else None, stderr.read_text(errors="replace"),
            )

    def _stop_interrupted(self, pid: int) -> None:
        """Ctrl-C reaches the step too (one process group): let it stop its own way (it
        says what to rerun), tell it if the signal came to this process alone, kill it last."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        for send in (None, signal.SIGINT, signal.SIGKILL):
            if send is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, send)
            if self._line(5) is not None:
                return

    def _line(self, timeout: float | None = None) -> str | None:
        """The next line from the zygote, or None if none came within `timeout` seconds."""
        while b"\n" not in self._pending:
            if timeout is not None and not select.select([self._results], [], [], timeout)[0]:
                return None
            chunk = os.read(self._results, 256)
            if not chunk:
                raise RuntimeError("the step runner exited")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=30)
        os.close(self._results)


def _become_step(request: dict) -> int:
    """In the forked child: set the process up as the interpreter would, run the script."""
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        if path:
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [request["script"], *request["arguments"]]
    sys.path[0] = str(Path(request["script"]).resolve().parent)
    try:
        runpy.run_path(request["script"], run_name="__main__")
        return 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback, exit code 1
        traceback.print_exc()
        return 1


def serve() -> None:
    """The zygote: preload, then fork a child per request."""
    # Ctrl-C reaches the whole process group: the step handles it, the zygote waits for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in PRELOADED:
        __import__(module)
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):  # only there to find this module
        if entry in sys.path:
            sys.path.remove(entry)
    results = os.fdopen(int(os.environ.pop("FRAUDLAB_STEP_RESULTS_FD")), "w")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = 1
            try:
                code = _become_step(request)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        results.write(f"{pid}\n")
        results.flush()
        _, status = os.waitpid(pid, 0)
        results.write(f"{os.waitstatus_to_exitcode(status)}\n")
        results.flush()


if __name__ == "__main__":
    serve()
