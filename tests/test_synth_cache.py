"""The synthesis cache: an assembly is reused only while every input of synthesis is unchanged."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from localaws.cloudformation import synth


@pytest.fixture
def sources(tmp_path):
    """A copy of what synthesis reads."""
    for pattern in synth.INPUTS:
        for path in synth.ROOT.glob(pattern):
            target = tmp_path / path.relative_to(synth.ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    return tmp_path


@pytest.mark.parametrize("edit", ["stacks/network_stack.py", "cdk.json", "processing/drift_monitor.py", "processing/features.py"])
def test_any_input_changed_is_a_new_key(sources, edit):
    before = synth.source_key(sources)
    assert synth.source_key(sources) == before  # deterministic
    path = sources / edit
    path.write_text(path.read_text() + ("\n" if edit.endswith(".json") else "\n# changed\n"))
    assert synth.source_key(sources) != before


def test_cdk_environment_is_an_input(sources, monkeypatch):
    monkeypatch.delenv("CDK_DEFAULT_REGION", raising=False)
    before = synth.source_key(sources)
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    assert synth.source_key(sources) != before


def test_variables_only_the_cdk_cli_reads_are_not_inputs(sources, monkeypatch):
    """Regression: make test exports CDK_DISABLE_CLI_TELEMETRY, a learner's shell does not:
    the labs the tests run in a learner's environment synthesized every assembly again."""
    monkeypatch.delenv("CDK_DISABLE_CLI_TELEMETRY", raising=False)
    before = synth.source_key(sources)
    monkeypatch.setenv("CDK_DISABLE_CLI_TELEMETRY", "true")
    assert synth.source_key(sources) == before


def test_processes_wanting_the_same_assembly_at_once_synthesize_it_once(tmp_path, monkeypatch):
    """Regression: at the start of a test session three workers and the README's lab each
    synthesized the default assembly at the same time. flock excludes across open files,
    so two threads stand for two processes here."""
    made, second_waits = [], threading.Event()

    def slow_synthesize(outdir, overrides=None):
        made.append(overrides)
        second_waits.wait(timeout=30)
        time.sleep(0.3)  # the second caller is at the cache by now
        outdir.mkdir(parents=True)
        (outdir / "manifest.json").write_text("{}")

    monkeypatch.setattr(synth, "synthesize", slow_synthesize)
    monkeypatch.setattr(synth, "_synthesize_apart", slow_synthesize)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(synth.assembly_for, None, tmp_path)
        while not made:
            time.sleep(0.01)
        second_waits.set()
        second = pool.submit(synth.assembly_for, None, tmp_path)
        assert first.result() == second.result()
    assert made == [None]


def test_a_cached_assembly_is_reused_per_override_set(tmp_path, monkeypatch):
    made = []

    def fake_synthesize(outdir, overrides=None):
        outdir.mkdir(parents=True)
        (outdir / "manifest.json").write_text("{}")
        made.append(overrides)

    monkeypatch.setattr(synth, "synthesize", fake_synthesize)
    monkeypatch.setattr(synth, "_synthesize_apart", fake_synthesize)  # where the CDK is not loaded yet
    first = synth.assembly_for(None, cache=tmp_path)
    assert synth.assembly_for(None, cache=tmp_path) == first and made == [None]
    other = synth.assembly_for({"fraudlab:modelPackageArn": "arn:x"}, cache=tmp_path)
    assert other != first and made == [None, {"fraudlab:modelPackageArn": "arn:x"}]
    assert not list(tmp_path.glob("*.tmp"))


def test_prewarm_makes_each_missing_assembly_in_its_own_process_and_loads_nothing_when_all_are_made(tmp_path, monkeypatch):
    """synth.prewarm (the suite's session start): every missing assembly synthesized where the
    CDK is loaded, once (none in a child of its own per assembly); with all of them cached,
    the CDK is not even imported."""
    made, apart = [], []

    def fake_synthesize(outdir, overrides=None):
        outdir.mkdir(parents=True)
        (outdir / "manifest.json").write_text("{}")
        made.append(overrides)

    monkeypatch.setattr(synth, "synthesize", fake_synthesize)
    monkeypatch.setattr(synth, "_synthesize_apart", lambda outdir, overrides: apart.append(overrides))
    sets = [None, {"fraudlab:serverless": "true"}]
    synth.prewarm(sets, cache=tmp_path)
    synth.prewarm(sets, cache=tmp_path)
    assert made == sets and apart == []
    cached_only = ("import sys; from pathlib import Path; from localaws.cloudformation import synth; "
                   f"synth.prewarm({sets!r}, cache=Path({str(tmp_path)!r})); print('aws_cdk' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", cached_only], cwd=synth.ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_a_failed_synthesis_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    """Regression: the half-written scratch assembly of a failed synthesis stayed (*.tmp)."""

    def failing_synthesize(outdir, overrides=None):
        (outdir / "asset.partial").mkdir(parents=True)
        raise synth.SynthError("synthesis failed (exit 1): its output is above")

    monkeypatch.setattr(synth, "synthesize", failing_synthesize)
    monkeypatch.setattr(synth, "_synthesize_apart", failing_synthesize)
    with pytest.raises(synth.SynthError):
        synth.assembly_for({"fraudlab:driftThreshold": "bad"}, cache=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".lock"]  # its lock only: a later run may wait on it


def test_pruning_keeps_every_assembly_of_the_current_source(tmp_path):
    """Regression: with more override sets in use than the cache kept (checkov's five
    variants beside the tests' own), an assembly a fixture held vanished mid-session."""
    for key, count in (("current", 9), ("old", 4)):
        for index in range(count):
            (tmp_path / f"{key}-{index:08x}").mkdir()
            (tmp_path / f"{key}-{index:08x}" / "manifest.json").write_text("{}")
    synth._prune(tmp_path, current="current")
    left = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert left.count("current") == 9 and left.count("old") == 4


def test_pruning_keeps_whole_sources_and_drops_the_least_recently_used(tmp_path):
    """Regression: a lab run in a subprocess with other CDK_* variables (another source)
    pruned all but two of the test session's assemblies, and the session's fixtures then
    found no manifest.json."""
    sources = [f"source{n}" for n in range(synth.KEPT_OTHER_SOURCES + 2)]
    for age, source in enumerate(sources):  # source0 the most recently used
        for index in range(3):
            assembly = tmp_path / f"{source}-{index:08x}"
            assembly.mkdir()
            os.utime(assembly, (1_000_000 - age * 100 - index, 1_000_000 - age * 100 - index))
    synth._prune(tmp_path, current="current")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(f"{source}-{index:08x}" for source in sources[: synth.KEPT_OTHER_SOURCES] for index in range(3))


# A process that has not loaded the CDK (a lab run, `make local-up`) synthesizes in a child.
APART = """
import json, sys
from localaws.cloudformation import synth
try:
    synth.assembly_for({"fraudlab:maxAzs": "three"}, cache=synth.Path(sys.argv[1]))
except synth.SynthError as error:
    print(json.dumps({"error": str(error), "cdk_loaded": "aws_cdk" in sys.modules}))
"""


def test_a_process_without_the_cdk_synthesizes_in_a_child_and_never_loads_it(tmp_path):
    """Regression: a lab run synthesized in-process and kept the CDK and its Node runtime for
    the rest of the run (its peak memory 3.0 GB instead of 2.4 GB at 20k)."""
    ran = subprocess.run([sys.executable, "-c", APART, str(tmp_path)], cwd=synth.ROOT, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"error": "synthesis failed (exit 1): its output is above", "cdk_loaded": False}
    assert "fraudlab:maxAzs='three' is not a whole number" in ran.stderr  # the child's own words reach the user
    assert not list(tmp_path.glob("*/manifest.json"))  # nothing cached from a failed synthesis
