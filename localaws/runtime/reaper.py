"""No container outlives the local AWS, however it ends (even SIGKILL).

Every container the local AWS starts (a serving container, a processing job's hosts) runs
in a process group of its own. The reaper is a small process of its own session (Ctrl-C
does not reach it) holding a pipe from the local AWS: each group is registered on start
and released when stopped; when the pipe closes, because the local AWS stopped or died,
the reaper kills every group still registered, then exits.
Protocol on its stdin: "+<pgid>" registers, "-<pgid>" releases, one per line.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading


class Reaper:
    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}")

    def release(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def _send(self, line: str) -> None:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "localaws.runtime.reaper"], stdin=subprocess.PIPE, text=True, start_new_session=True,
                    env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(__file__)))},
                )
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()


REAPER = Reaper()  # one per local AWS process


def kill_group(pgid: int) -> None:
    """SIGKILL every process of a container's group; nothing left of it is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        pgid = int(line[1:])
        if line.startswith("+"):
            groups.add(pgid)
        else:
            groups.discard(pgid)
    for pgid in groups:
        kill_group(pgid)


if __name__ == "__main__":
    main()
