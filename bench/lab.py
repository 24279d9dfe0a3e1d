"""`make lab` end to end at 20k, 100k and 1M transactions: its wall time, each step's time
from the lab's own summary, and the peak memory of the whole process tree (the local AWS,
the steps, the jobs and the serving containers: summed PSS), sampled every half second.

`python -m bench.lab 20000` runs one size alone (results.json is updated the same way).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import save
from localaws.offline_lab import read_summary

ROOT = Path(__file__).resolve().parent.parent
SIZES = (20_000, 100_000, 1_000_000)
SAMPLE_SECONDS = 0.5


def label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1000}k"


def tree_pss_kib(root: int) -> int:
    """Memory of `root` and every process descending from it, in KiB: the sum of their PSS
    (each shared page split among its sharers; RSS would count the forked steps' and the
    gunicorn workers' shared pages once per process)."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{entry}/status").read_text() if entry.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), None)
        if ppid is not None:
            parents[int(entry)] = int(ppid)
    total = 0
    for pid in parents:
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor != root:
            continue
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total


def step_slug(step: str) -> str:
    """A summary row's name as part of a figure's name: `cdk deploy (endpoint, monitoring)` -> `cdk_deploy`."""
    return re.sub(r"[^a-z0-9]+", "_", step.split("(")[0].lower()).strip("_")


def lab_run(size: int) -> dict[str, float]:
    """One `python -m localaws lab --size <size>` in a scratch work directory."""
    prefix = f"lab_{label(size)}"
    with tempfile.TemporaryDirectory() as workdir, open(Path(workdir) / "lab.log", "w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "localaws", "lab", "--size", str(size), "--workdir", workdir],
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_pss_kib(process.pid))
            time.sleep(SAMPLE_SECONDS)
        figures = {f"{prefix}_wall_s": time.perf_counter() - started, f"{prefix}_exit_code": process.returncode,
                   f"{prefix}_peak_tree_pss_mib": peak / 1024}
        log.seek(0)
        output = log.read()
    for step, (_, seconds, _) in read_summary(output).items():
        figures[f"{prefix}_step_{step_slug(step)}_s"] = seconds
    if process.returncode != 0:
        print(output[-3000:], file=sys.stderr)
    return figures


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, float]:
    figures: dict[str, float] = {}
    for size in sizes:
        figures.update(lab_run(size))
    return figures


if __name__ == "__main__":
    measured = run(tuple(int(size) for size in sys.argv[1:]) or SIZES)
    for name, value in measured.items():
        print(f"{name:48s} {value:12,.3f}")
    save(measured)
