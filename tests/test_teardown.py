"""The teardown step: deletes what the steps create outside CloudFormation, audits the rest."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from localaws.cloudformation.deploy import deploy_assembly
from localaws.cloudformation.destroy import destroy_stacks
from localaws.server import LocalAws
from localaws.cloudformation.synth import assembly_for
from localaws.offline_lab import LabRun, destroy_and_audit
from tests.helpers import ROOT, isolated_env, outputs_of, run_step, step_runner

# Its own region and stack prefix: the other tests' resources share this process's moto,
# and S3 buckets and IAM roles are global, as on AWS.
REGION = "ap-southeast-2"
PREFIX = "TeardownLab"
TAGS = [{"Key": "project", "Value": "fraudlab"}]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    assembly = assembly_for({"fraudlab:stackPrefix": PREFIX, "fraudlab:modelPackageGroupName": "teardown-lab"})
    with LocalAws(region=REGION) as server:
        deploy_assembly(assembly, server.session())
        yield server


def sleeping_job(sagemaker, name: str, role_arn: str) -> None:
    sagemaker.create_processing_job(
        ProcessingJobName=name, RoleArn=role_arn,
        AppSpecification={"ImageUri": "img", "ContainerEntrypoint": ["python3", "-c", "import time; time.sleep(120)"]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.t3.medium", "VolumeSizeInGB": 1}},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
    )


def test_teardown_touches_only_the_labs_own_resources_in_its_own_region(deployed, tmp_path):
    """Regression: step 10 deleted every monitoring schedule in the region (another team's
    too), listed the lab's global IAM roles as leftovers from any other region (exit 1), and
    never saw a running job offline (moto lists it Completed), so never stopped it."""
    server = deployed
    session, outputs = server.session(), outputs_of(server)
    sagemaker = session.client("sagemaker")
    env = isolated_env(**server.environment(), FRAUDLAB_STACK_PREFIX=PREFIX)
    schedule = {"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"}, "MonitoringType": "DataQuality"}
    for name in ("other-team-drift", f"{PREFIX}-untagged-drift"):  # neither is the lab's: no project tag
        sagemaker.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=schedule)
    sagemaker.create_model(ModelName="other-team-model", ExecutionRoleArn=outputs["ServingRoleArn"], PrimaryContainer={"Image": "img"})
    session.client("sns").create_topic(Name="other-team-topic")
    sleeping_job(sagemaker, "fraudlab-stuck-job", outputs["ProcessingRoleArn"])
    sleeping_job(sagemaker, "other-team-job", outputs["ProcessingRoleArn"])
    running = sagemaker.list_processing_jobs(StatusEquals="InProgress")["ProcessingJobSummaries"]
    assert {j["ProcessingJobName"] for j in running} == {"fraudlab-stuck-job", "other-team-job"}

    elsewhere = run_step("10_teardown.py", {**env, "AWS_REGION": "eu-central-1"}, "--audit-only", cwd=tmp_path)
    assert elsewhere.returncode == 0 and "the lab is gone" in elsewhere.stdout, elsewhere.stdout + elsewhere.stderr

    completed = run_step("10_teardown.py", env, cwd=tmp_path)
    assert "stopped processing job fraudlab-stuck-job" in completed.stdout, completed.stdout + completed.stderr
    assert "other-team" not in completed.stdout and "untagged-drift" not in completed.stdout, completed.stdout
    schedules = {s["MonitoringScheduleName"] for s in sagemaker.list_monitoring_schedules()["MonitoringScheduleSummaries"]}
    assert schedules == {"other-team-drift", f"{PREFIX}-untagged-drift"}
    assert sagemaker.describe_model(ModelName="other-team-model")["ModelName"] == "other-team-model"
    assert sagemaker.describe_processing_job(ProcessingJobName="fraudlab-stuck-job")["ProcessingJobStatus"] in ("Stopping", "Stopped")
    assert sagemaker.describe_processing_job(ProcessingJobName="other-team-job")["ProcessingJobStatus"] == "InProgress"
    server.jobs.wait("fraudlab-stuck-job", timeout=30)
    assert sagemaker.list_processing_jobs(StatusEquals="Stopped")["ProcessingJobSummaries"][0]["ProcessingJobName"] == "fraudlab-stuck-job"
    sagemaker.stop_processing_job(ProcessingJobName="other-team-job")  # the test's own cleanup


def test_teardown_deletes_script_made_resources_and_the_audit_catches_the_rest(deployed, tmp_path):
    server = deployed
    session, outputs = server.session(), outputs_of(server)
    sagemaker, sns = session.client("sagemaker"), session.client("sns")
    env = isolated_env(**server.environment(), FRAUDLAB_STACK_PREFIX=PREFIX)
    # What steps (or a learner trying variations) leave outside the stacks:
    package = sagemaker.create_model_package(
        ModelPackageGroupName=outputs["ModelPackageGroupName"], ModelPackageDescription="left by step 04",
        InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": "s3://b/k"}], "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    sagemaker.create_model(ModelName="fraudlab-try-serverless", ExecutionRoleArn=outputs["ServingRoleArn"], PrimaryContainer={"Image": "img"}, Tags=TAGS)
    # ...and one thing teardown does not delete by itself: the audit must name it.
    stray = sns.create_topic(Name=f"{PREFIX}-stray-topic", Tags=TAGS)["TopicArn"]

    first = run_step("10_teardown.py", env, cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "deleted model package" in first.stdout and "deleted model fraudlab-try-serverless" in first.stdout
    assert f"{PREFIX}-stray-topic" in first.stdout and "1 leftovers outside any stack" in first.stdout, first.stdout
    assert "next: python -m localaws destroy (the ARN" in first.stdout  # the command that works offline
    with pytest.raises(sagemaker.exceptions.ClientError):
        sagemaker.describe_model_package(ModelPackageName=package)

    sns.delete_topic(TopicArn=stray)
    second = run_step("10_teardown.py", env, "--audit-only", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "no leftovers outside the stacks" in second.stdout
    recorded = json.loads((tmp_path / "build/lab-results/10_teardown.json").read_text())
    assert recorded["leftovers"] == 0 and recorded["in_stacks"] > 0

    # More objects than one listing page, as a big lab leaves (regression: at 1M transactions
    # the emptied bucket kept all but its first 1,000 objects, and stayed).
    s3 = session.client("s3")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=outputs["LabBucketName"], Key=f"raw/part-{i:05d}.gz", Body=b"x"), range(1_100)))
    # Versioned, as on AWS: an overwrite and a delete leave an old version and a delete marker,
    # which must go too before the bucket can.
    assert s3.get_bucket_versioning(Bucket=outputs["LabBucketName"])["Status"] == "Enabled"
    s3.put_object(Bucket=outputs["LabBucketName"], Key="raw/part-00000.gz", Body=b"y")
    s3.delete_object(Bucket=outputs["LabBucketName"], Key="raw/part-00001.gz")
    versions = s3.list_object_versions(Bucket=outputs["LabBucketName"], Prefix="raw/part-0000")
    assert len(versions["Versions"]) == 11 and len(versions["DeleteMarkers"]) == 1
    # What step 10 told the learner to run, then the audit finds nothing at all.
    destroyed = subprocess.run(
        [sys.executable, "-m", "localaws", "destroy"], cwd=ROOT, env={**env, "PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=300,
    )
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert destroyed.stdout.strip() == f"✓ destroyed {PREFIX}-MLPlatform, {PREFIX}-Network, {PREFIX}-Data"
    final = run_step("10_teardown.py", env, "--audit-only", cwd=tmp_path)
    assert final.returncode == 0 and "the lab is gone" in final.stdout, final.stdout + final.stderr

    # The same lab deployed again on the same local AWS (regression: "Export names must be
    # unique": moto kept the exports of the stack whose VPC it failed to delete).
    assembly = assembly_for({"fraudlab:stackPrefix": PREFIX, "fraudlab:modelPackageGroupName": "teardown-lab"})
    assert [r.name for r in deploy_assembly(assembly, session)] == [f"{PREFIX}-Data", f"{PREFIX}-Network", f"{PREFIX}-MLPlatform"]
    # What make lab runs after step 10: `cdk destroy --all`, then the audit, which finds nothing.
    run = LabRun(server, {**env, "PATH": os.environ["PATH"]}, tmp_path, assembly, step_runner())
    assert destroy_and_audit(run) == "3 stacks destroyed; 0 leftovers, 0 resources in 0 stacks"
    assert destroy_stacks(session, PREFIX) == []


def test_teardown_without_credentials_says_what_to_do(tmp_path):
    env = isolated_env(AWS_REGION="us-east-1")
    completed = run_step("10_teardown.py", env, cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0 and "credentials" in completed.stderr
