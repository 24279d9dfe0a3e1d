"""Fault injection, ingestion side: after any failure, rerunning step 01 lands every
generated record exactly once, and a stopped local AWS is one clear line, not a traceback."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from moto.s3.models import s3_backends

from labkit.landed import read_landed
from labkit.transactions import generate
from localaws.cloudformation.deploy import deploy_assembly
from localaws.cloudformation.synth import assembly_for
from localaws.server import ACCOUNT_ID, LocalAws
from tests.helpers import isolated_env, outputs_of, run_step

REGION = "ca-central-1"  # its own region: the bucket and stream are this module's alone
PREFIX = "FaultLab"


@pytest.fixture(scope="module")
def lab():
    with LocalAws(region=REGION) as server:
        deploy_assembly(assembly_for({"fraudlab:stackPrefix": PREFIX}), server.session())
        yield server


def landed_counts(server, count: int, seed: int) -> Counter:
    """How many times each generated transaction of this dataset is in the bucket."""
    outputs = outputs_of(server)
    landed = read_landed(server.session().client("s3"), outputs["LabBucketName"], outputs["RawPrefix"])
    return Counter({tid: landed.transaction_ids[tid] for tid in generate(count, seed=seed).transactions["transaction_id"]})


def stream(server, tmp_path, count: int, seed: int):
    env = isolated_env(**server.environment(), FRAUDLAB_STACK_PREFIX=PREFIX)
    return run_step("01_stream_transactions.py", env, "--count", str(count), "--seed", str(seed), "--corrupt", "0", "--wait", "5", cwd=tmp_path)


@pytest.mark.parametrize("fraction, seed", [(0.5, 101), (0.9, 102)])
def test_a_rerun_after_partial_failures_lands_every_record_once(lab, tmp_path, fraction, seed):
    lab.faults.firehose_failure_fraction = fraction
    try:
        failed = stream(lab, tmp_path, 3_000, seed)
    finally:
        lab.faults.firehose_failure_fraction = 0.0
    assert failed.returncode == 2 and "rerun this step with the same --count and --seed" in failed.stderr, failed.stdout + failed.stderr
    after_failure = landed_counts(lab, 3_000, seed)
    lost = sum(1 for n in after_failure.values() if n == 0)
    assert lost > 0 and max(after_failure.values()) == 1

    rerun = stream(lab, tmp_path, 3_000, seed)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"this run resent {lost:,} records that had not landed; none that had" in rerun.stdout
    assert set(landed_counts(lab, 3_000, seed).values()) == {1}  # 0 lost, 0 duplicated

    again = stream(lab, tmp_path, 3_000, seed)
    assert "every record of this batch has landed already; nothing is resent" in again.stdout
    assert set(landed_counts(lab, 3_000, seed).values()) == {1}


def test_the_local_aws_stopped_mid_stream_then_restarted_loses_and_duplicates_nothing(lab, tmp_path):
    count, seed = 40_000, 103
    outputs = outputs_of(lab)
    bucket = s3_backends[ACCOUNT_ID]["aws"].buckets[outputs["LabBucketName"]]
    before = len(bucket.keys)
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("run", stream(lab, tmp_path, count, seed)))
    runner.start()
    deadline = time.monotonic() + 120
    while len(bucket.keys) < before + 5 and time.monotonic() < deadline:  # a few batches in
        time.sleep(0.01)
    port = int(lab.endpoint_url.rsplit(":", 1)[1])
    lab.stop()
    runner.join(300)
    killed = outcome["run"]
    assert killed.returncode == 2, killed.stdout + killed.stderr
    assert killed.stderr.strip().startswith("✗ cannot reach") and "Traceback" not in killed.stderr, killed.stderr

    restarted = LocalAws(port=port, region=REGION).start()
    try:
        partial = landed_counts(restarted, count, seed)
        assert 0 < sum(partial.values()) < count
        rerun = stream(restarted, tmp_path, count, seed)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert set(landed_counts(restarted, count, seed).values()) == {1}
    finally:
        restarted.stop()  # (the fixture's own server is already stopped: this test comes last)
