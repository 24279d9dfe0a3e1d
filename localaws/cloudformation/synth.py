"""Synthesize the CDK app in-process (no CDK CLI needed), with cdk-nag enforced as usual;
and a cache of synthesized assemblies keyed on everything synthesis reads.

Synthesis takes `synth_in_process_s` (bench/results.json; importing the CDK and starting its
Node runtime included), on every offline run. Its output depends only on the stack code, cdk.json, the
files it packages or imports, the context overrides, the CDK_* environment and the installed
CDK versions: with those unchanged, the assembly is the same, so a run reuses it
(`assembly_for`). A cached assembly was cdk-nag checked when it was made: the check is part
of synthesis. Processes that need the same assembly at once (a test session's workers, a
lab in a subprocess) synthesize it once: the others wait for it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# Set before jsii starts: synth must never ask EC2 metadata (jsii's Node: stacks/__init__.py).
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "synth-cache"
KEPT_OTHER_SOURCES = 3  # other sources whose assemblies are kept (another branch's, another CDK_* environment's)
# What synthesis reads: the stacks, the context, and the code it imports or packages.
INPUTS = ("stacks/**/*.py", "processing/*.py", "cdk.json", "localaws/cloudformation/synth.py")
PACKAGES = ("aws-cdk-lib", "constructs", "cdk-nag", "jsii")
# CDK_* variables only the CDK CLI reads (none occurs in aws-cdk-lib's code): not inputs.
# Regression: make test exports CDK_DISABLE_CLI_TELEMETRY and a learner's shell does not,
# so the labs the tests start in a learner's environment synthesized everything again.
CLI_ONLY = ("CDK_DISABLE_CLI_TELEMETRY", "CDK_DISABLE_VERSION_CHECK")


def synthesize(outdir: Path | str, overrides: dict | None = None):
    """Write the lab's cloud assembly to `outdir`; returns the app (its .outdir is the path)."""
    from stacks.lab import build_lab, new_app  # imports the CDK (slow): only when synthesizing

    app = new_app(outdir=str(outdir), overrides=overrides)
    build_lab(app)
    app.synth()
    return app


def assembly_for(overrides: dict | None = None, cache: Path = CACHE) -> Path:
    """The cloud assembly for the current inputs and `overrides`, synthesized only if the
    cache has none (then kept: every assembly of the current source is, one per override set
    in use; of other sources only the KEPT_OTHER_SOURCES most recent)."""
    ready = _cached(overrides, cache)
    if (ready / "manifest.json").exists():
        os.utime(ready)  # most recently used: pruned last
        return ready
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{ready.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process synthesizing this assembly: wait for it
        if (ready / "manifest.json").exists():
            os.utime(ready)
            return ready
        scratch = cache / f"{ready.name}.{os.getpid()}.tmp"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            if "aws_cdk" in sys.modules:  # the CDK and its Node runtime are up already: reuse them
                synthesize(scratch, overrides)
            else:
                _synthesize_apart(scratch, overrides)
        except BaseException:  # a cdk-nag finding, a bad context value, Ctrl-C: leave no half assembly
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        try:
            scratch.rename(ready)
        except OSError:  # a process that took no lock (an older kit) cached it meanwhile: identical, keep theirs
            shutil.rmtree(scratch, ignore_errors=True)
    _prune(cache, current=source_key())
    return ready


def prewarm(override_sets: list[dict | None], cache: Path = CACHE) -> None:
    """Every assembly of `override_sets` into the cache, in order, all in this process (one
    CDK for them all, where each process that first needed one synthesized it itself: a test
    session's workers then find them made, or wait on the one being made). Nothing is loaded
    when the cache has them all."""
    for overrides in override_sets:
        if not (_cached(overrides, cache) / "manifest.json").exists():
            import stacks.lab  # noqa: F401  (the CDK in this process, once: assembly_for synthesizes with it)
        assembly_for(overrides, cache)


def _cached(overrides: dict | None, cache: Path) -> Path:
    return cache / f"{source_key()}-{_digest(json.dumps(overrides or {}, sort_keys=True).encode())}"


class SynthError(RuntimeError):
    """Synthesis failed (a cdk-nag finding, a bad context value): what it printed says why."""


def _synthesize_apart(outdir: Path, overrides: dict | None) -> None:
    """synthesize() in a process of its own, so the CDK's Node runtime and what the CDK takes
    in Python end with it: in-process, that memory stayed for the rest of a lab run and raised
    its peak (`lab_20k_peak_tree_pss_mib` in bench/results.json is the peak without it). Its
    output and errors go to ours."""
    child = subprocess.run([sys.executable, "-m", "localaws.cloudformation.synth", str(outdir), json.dumps(overrides or {})], cwd=ROOT)
    if child.returncode != 0:
        raise SynthError(f"synthesis failed (exit {child.returncode}): its output is above")


def source_key(root: Path = ROOT) -> str:
    """A digest of every input of synthesis except the overrides."""
    digest = hashlib.sha256()
    for pattern in INPUTS:
        for path in sorted(root.glob(pattern)):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for package in PACKAGES:
        digest.update(f"{package}=={metadata.version(package)}\0".encode())
    for name in sorted(k for k in os.environ if k.startswith("CDK_") and k not in CLI_ONLY):
        digest.update(f"{name}={os.environ[name]}\0".encode())
    return digest.hexdigest()[:16]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def _prune(cache: Path, current: str) -> None:
    """Never an assembly of the current source: a test session or a lab may still use it
    (regression: with more override sets in use than the cache kept, one vanished mid-run).
    Of other sources, every assembly of the KEPT_OTHER_SOURCES most recently used: another
    process synthesizing with other CDK_* variables is another source, and removing one of
    a session's override sets from it broke that session's fixtures (regression)."""
    source_of = {p: p.name.split("-", 1)[0] for p in cache.iterdir() if p.is_dir() and not p.name.endswith(".tmp")}
    last_used: dict[str, float] = {}
    for assembly, source in source_of.items():
        if source != current:
            last_used[source] = max(last_used.get(source, 0.0), assembly.stat().st_mtime)
    kept = {current, *sorted(last_used, key=last_used.get, reverse=True)[:KEPT_OTHER_SOURCES]}
    for assembly, source in source_of.items():
        if source not in kept:
            shutil.rmtree(assembly, ignore_errors=True)
    for lock in cache.glob("*.lock"):  # a dropped source's: its assemblies are gone
        if lock.name.split("-", 1)[0] not in kept:
            lock.unlink(missing_ok=True)


if __name__ == "__main__":
    if sys.argv[1] == "--prewarm":  # python -m localaws.cloudformation.synth --prewarm OVERRIDE_SETS_JSON
        prewarm(json.loads(sys.argv[2]))
    else:  # assembly_for's own process: python -m localaws.cloudformation.synth OUTDIR OVERRIDES_JSON
        synthesize(sys.argv[1], json.loads(sys.argv[2]))
