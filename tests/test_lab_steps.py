"""Steps 00 and 01 run as a learner runs them: a process, an environment, one line per problem."""
from __future__ import annotations

import json
import re

import pytest

from localaws.server import LocalAws
from tests.helpers import isolated_env, run_step


@pytest.fixture(scope="module")
def empty_aws():
    """A local AWS region where nothing has been deployed (moto's state is per process and
    region, so another region of the same process is as empty as a new account)."""
    with LocalAws(region="eu-west-1") as server:
        yield server


def test_preflight_passes_on_the_deployed_lab(local_aws, tmp_path):
    server, _ = local_aws
    result = run_step("00_preflight.py", isolated_env(**server.environment()), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("FraudLab-Network", "FraudLab-Data", "FraudLab-MLPlatform"):
        assert f"✓ stack {name} CREATE_COMPLETE" in result.stdout
    assert "Firehose stream" in result.stdout and "ACTIVE" in result.stdout
    assert json.loads((tmp_path / "build/lab-results/00_preflight.json").read_text())["key_figure"]


@pytest.mark.parametrize(
    "remove, set_, message",
    [
        (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), {}, "✗ no AWS credentials: run `aws configure`"),
        (("AWS_REGION", "AWS_DEFAULT_REGION"), {}, "✗ no AWS region: set AWS_REGION"),
        ((), {"AWS_REGION": "mars-north-1", "AWS_DEFAULT_REGION": "mars-north-1"}, "✗ unknown AWS region 'mars-north-1'"),
    ],
)
def test_preflight_explains_a_missing_setting_in_one_line(local_aws, tmp_path, remove, set_, message):
    server, _ = local_aws
    env = {k: v for k, v in isolated_env(**server.environment()).items() if k not in remove}
    result = run_step("00_preflight.py", {**env, **set_}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [next(line for line in result.stderr.splitlines() if line.startswith("✗"))]
    assert result.stderr.startswith(message), result.stderr


def test_preflight_says_which_stacks_to_deploy(empty_aws, tmp_path):
    result = run_step("00_preflight.py", isolated_env(**empty_aws.environment()), cwd=tmp_path)
    assert result.returncode == 1
    # the command that works on the backend in use: the local AWS's own deploy here
    assert "✗ stack FraudLab-Network is not deployed: run `python -m localaws deploy`" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_preflight_cannot_reach_the_endpoint(tmp_path):
    env = isolated_env(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_REGION="us-east-1")
    result = run_step("00_preflight.py", {**env, "AWS_MAX_ATTEMPTS": "1"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("✗ cannot reach http://127.0.0.1:9"), result.stderr


def test_stream_step_needs_the_stacks(empty_aws, tmp_path):
    result = run_step("01_stream_transactions.py", isolated_env(**empty_aws.environment()), "--count", "100", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "✗ stack FraudLab-Network is not deployed: run `python -m localaws deploy`"


def test_stream_step_lands_every_record_and_reruns_without_duplicates(local_aws, outputs, tmp_path):
    server, _ = local_aws
    env = isolated_env(**server.environment())
    first = run_step("01_stream_transactions.py", env, "--count", "2500", "--seed", "42", "--corrupt", "20", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"^  2520 +0 +0 +0 +6$", first.stdout, re.MULTILINE), first.stdout  # sent, retried, failed, not sent, calls
    assert "all 2,500 records of this batch landed in S3 (0 unexpected duplicates)" in first.stdout

    labels = server.session().client("s3").get_object(Bucket=outputs["LabBucketName"], Key="labels/seed42-n2500/labels.csv")
    header = labels["Body"].read().decode().splitlines()[0]
    assert header == "transaction_id,is_fraud,fraud_scenario,label_available_at"

    again = run_step("01_stream_transactions.py", env, "--count", "2500", "--seed", "42", "--corrupt", "20", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "every record of this batch has landed already; nothing is resent" in again.stdout
    assert "(0 unexpected duplicates)" in again.stdout
    figures = json.loads((tmp_path / "build/lab-results/01_stream_transactions.json").read_text())
    assert (figures["records_landed"], figures["duplicate_records"]) == (2500, 0)


def test_stream_step_rejects_bad_arguments(tmp_path):
    result = run_step("01_stream_transactions.py", isolated_env(), "--batch-size", "501", cwd=tmp_path)
    assert result.returncode == 2
    assert "--batch-size must be 1-500" in result.stderr
