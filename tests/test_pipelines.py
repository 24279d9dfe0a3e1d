"""The local AWS executes SageMaker Pipeline definitions: parameters, Get / Std:Join /
Std:JsonGet, dependencies, conditions both ways, the Fail step, caching, a failing job,
and ListPipelineExecutionSteps with true statuses and reasons. Small definitions written
here, run through boto3 as a learner's code would; the lab's own pipeline runs in
test_readme_by_hand.py."""
from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from localaws.sagemaker.pipeline_definition import DefinitionError, duration, in_dependency_order, parameter_values, validate
from localaws.sagemaker.pipelines import walk
from tests.helpers import sagemaker_role

BUCKET = "pipeline-tests"
GROUP = "pipeline-tests"
ROLE = "arn:aws:iam::123456789012:role/pipeline-tests"
# The step's container: writes its first argument as report.json's quality.score, exits with the second.
SCRIPT = """import json, pathlib, sys
out = pathlib.Path("/opt/ml/processing/output/report".replace("/opt/ml", __import__("os").environ.get("FRAUDLAB_OPT_ML", "/opt/ml")))
out.mkdir(parents=True, exist_ok=True)
(out / "report.json").write_text(json.dumps({"quality": {"score": float(sys.argv[1])}, "runs": [1, 2]}))
sys.exit(int(sys.argv[2]))
"""


def get(path: str) -> dict:
    return {"Get": path}


def definition(exit_code: str = "0", cache: bool = False) -> dict:
    score = {"Std:JsonGet": {"PropertyFile": get("Steps.Score.PropertyFiles.Report"), "Path": "quality.score"}}
    score_step = {
        "Name": "Score",
        "Type": "Processing",
        "Arguments": {
            "RoleArn": ROLE,
            "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
                                 "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/score.py"],
                                 "ContainerArguments": [get("Parameters.Score"), exit_code]},
            "ProcessingInputs": [{"InputName": "code", "S3Input": {"S3Uri": f"s3://{BUCKET}/code/", "LocalPath": "/opt/ml/processing/input/code",
                                                                    "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
                "S3Uri": {"Std:Join": {"On": "/", "Values": [f"s3://{BUCKET}/runs", get("Execution.PipelineExecutionId"), "report"]}},
                "LocalPath": "/opt/ml/processing/output/report", "S3UploadMode": "EndOfJob"}}]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        },
        "PropertyFiles": [{"PropertyFileName": "Report", "OutputName": "report", "FilePath": "report.json"}],
        **({"CacheConfig": {"Enabled": True, "ExpireAfter": "PT1H"}} if cache else {}),
    }
    register = {
        "Name": "Register",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": GROUP,
            "InferenceSpecification": {
                "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
                                "ModelDataUrl": {"Std:Join": {"On": "", "Values": [
                                    get("Steps.Score.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"), "/model.tar.gz"]}}}],
                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"],
            },
            "ModelApprovalStatus": get("Parameters.Status"),
            "CustomerMetadataProperties": {"score": {"Std:Join": {"On": "", "Values": [score]}}},
        },
    }
    fail = {"Name": "TooLow", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {"On": " ", "Values": [
        "score", score, "is below", get("Parameters.Threshold")]}}}}
    return {
        "Version": "2020-12-01",
        "Parameters": [
            {"Name": "Score", "Type": "String", "DefaultValue": "0.7"},
            {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5},
            {"Name": "Status", "Type": "String", "DefaultValue": "PendingManualApproval"},
        ],
        "Steps": [
            {"Name": "Gate", "Type": "Condition", "Arguments": {
                "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": score, "RightValue": get("Parameters.Threshold")}],
                "IfSteps": [register], "ElseSteps": [fail]}},
            score_step,  # listed after the step that needs it: the runner orders by reference
        ],
    }


@pytest.fixture(scope="module")
def s3(local_aws):
    server, _ = local_aws
    return server.session().client("s3")


@pytest.fixture(scope="module")
def sagemaker(local_aws, s3):
    server, _ = local_aws
    session = server.session()
    sagemaker_role(session, ROLE.rsplit("/", 1)[1])
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="code/score.py", Body=SCRIPT.encode())
    client = session.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    return client


def create(sagemaker, name: str, body: dict) -> None:
    sagemaker.create_pipeline(PipelineName=name, PipelineDefinition=json.dumps(body), RoleArn=ROLE, ClientRequestToken=name.ljust(32, "x"))


def execute(sagemaker, name: str, **parameters: str) -> tuple[dict, dict[str, dict]]:
    arn = sagemaker.start_pipeline_execution(
        PipelineName=name, PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()], ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    deadline = time.monotonic() + 120
    while (described := sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn))["PipelineExecutionStatus"] == "Executing":
        assert time.monotonic() < deadline, "the execution did not end in 120 s"
        time.sleep(0.1)
    steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    return described, {s["StepName"]: s for s in steps}


def packages(sagemaker) -> list[dict]:
    return sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]


def test_gate_passes_registers_with_values_from_parameters_properties_and_the_property_file(sagemaker, s3):
    create(sagemaker, "gate-passes", definition())
    before = len(packages(sagemaker))
    execution, steps = execute(sagemaker, "gate-passes", Status="Approved")
    assert execution["PipelineExecutionStatus"] == "Succeeded" and not execution.get("FailureReason")
    assert [steps[s]["StepStatus"] for s in ("Score", "Gate", "Register")] == ["Succeeded"] * 3 and "TooLow" not in steps
    assert steps["Gate"]["Metadata"] == {"Condition": {"Outcome": "True"}}
    assert steps["Score"]["Metadata"]["ProcessingJob"]["Arn"].split("/")[-1].startswith(f"pipelines-{execution['PipelineExecutionArn'].split('/')[-1]}-Score-")
    assert len(packages(sagemaker)) == before + 1
    package = sagemaker.describe_model_package(ModelPackageName=steps["Register"]["Metadata"]["RegisterModel"]["Arn"])
    execution_id = execution["PipelineExecutionArn"].split("/")[-1]
    assert package["ModelApprovalStatus"] == "Approved"  # the parameter given at start
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == f"s3://{BUCKET}/runs/{execution_id}/report/model.tar.gz"
    assert package["CustomerMetadataProperties"] == {"score": "0.7"}
    # The step ran as a real Processing job: its output is in S3, where the property file was read.
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=f"runs/{execution_id}/report/report.json")["Body"].read())
    assert report["quality"]["score"] == 0.7


def test_gate_fails_registers_nothing_and_the_fail_step_says_why(sagemaker):
    create(sagemaker, "gate-fails", definition())
    before = len(packages(sagemaker))
    execution, steps = execute(sagemaker, "gate-fails", Threshold="0.9")
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == "Step failure: One or multiple steps failed."
    assert steps["Gate"]["Metadata"] == {"Condition": {"Outcome": "False"}} and steps["Gate"]["StepStatus"] == "Succeeded"
    assert steps["TooLow"]["StepStatus"] == "Failed"
    assert steps["TooLow"]["FailureReason"] == steps["TooLow"]["Metadata"]["Fail"]["ErrorMessage"] == "score 0.7 is below 0.9"
    assert "Register" not in steps and len(packages(sagemaker)) == before


def test_a_failing_job_fails_its_step_with_the_job_reason_and_nothing_after_it_runs(sagemaker):
    create(sagemaker, "job-fails", definition(exit_code="3"))
    execution, steps = execute(sagemaker, "job-fails")
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert steps["Score"]["StepStatus"] == "Failed" and "exit code 3" in steps["Score"]["FailureReason"].lower()
    job = sagemaker.describe_processing_job(ProcessingJobName=steps["Score"]["Metadata"]["ProcessingJob"]["Arn"].split("/")[-1])
    assert job["ProcessingJobStatus"] == "Failed" and job["FailureReason"] == steps["Score"]["FailureReason"]
    assert set(steps) == {"Score"}  # the gate that needs its report never started


def test_caching_reuses_a_succeeded_step_with_the_same_key_only(sagemaker):
    create(sagemaker, "cached", definition(cache=True))
    first, first_steps = execute(sagemaker, "cached")
    second, second_steps = execute(sagemaker, "cached", Threshold="0.9")  # not in the step's cache key
    third, third_steps = execute(sagemaker, "cached", Score="0.8")  # in its ContainerArguments: a new key
    assert "CacheHitResult" not in first_steps["Score"]
    assert second_steps["Score"]["CacheHitResult"] == {"SourcePipelineExecutionArn": first["PipelineExecutionArn"]}
    assert second_steps["Score"]["Metadata"] == first_steps["Score"]["Metadata"]  # the earlier job
    assert second_steps["TooLow"]["FailureReason"] == "score 0.7 is below 0.9"  # the cached run's property file
    assert "CacheHitResult" not in third_steps["Score"] and third["PipelineExecutionStatus"] == "Succeeded"
    assert third_steps["Register"]["StepStatus"] == "Succeeded"


def test_steps_are_listed_newest_first_unless_asked_otherwise(sagemaker):
    create(sagemaker, "listing", definition())
    execution, _ = execute(sagemaker, "listing")
    arn = execution["PipelineExecutionArn"]
    newest_first = [s["StepName"] for s in sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]]
    oldest_first = [s["StepName"] for s in sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")["PipelineExecutionSteps"]]
    assert oldest_first == ["Score", "Gate", "Register"] and newest_first == oldest_first[::-1]
    listed = sagemaker.list_pipeline_executions(PipelineName="listing")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionStatus"] for e in listed] == ["Succeeded"]


def test_create_pipeline_refuses_what_sagemaker_refuses(sagemaker):
    broken = definition()
    broken["Steps"][1]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] = get("Parameters.Missing")
    with pytest.raises(ClientError, match="undefined parameter Missing"):
        create(sagemaker, "broken", broken)
    create(sagemaker, "parameters", definition())
    with pytest.raises(ClientError, match="parameter Nope is not defined"):
        execute(sagemaker, "parameters", Nope="1")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(Version="2019-01-01"), "Version"),
    (lambda d: d["Steps"].append({"Name": "Lambda", "Type": "Lambda", "Arguments": {}}), "not run by the local AWS"),
    (lambda d: d["Steps"][0]["Arguments"]["IfSteps"][0].update(DependsOn=["Nowhere"]), "undefined step Nowhere"),
    (lambda d: d["Steps"][1].update(PropertyFiles=[]), "does not declare"),
    (lambda d: d["Steps"].append(dict(d["Steps"][1])), "unique"),
])
def test_validation_names_the_problem(mutate, message):
    body = definition()
    mutate(body)
    with pytest.raises(DefinitionError, match=message):
        validate(json.dumps(body))


def test_property_paths_durations_parameters_and_order():
    described = {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "a", "S3Output": {"S3Uri": "s3://x/a"}},
                                                        {"OutputName": "b", "S3Output": {"S3Uri": "s3://x/b"}}]}, "runs": [3, 4]}
    assert walk(described, "ProcessingOutputConfig.Outputs['b'].S3Output.S3Uri") == "s3://x/b"
    assert walk(described, "ProcessingOutputConfig.Outputs[0].OutputName") == "a" and walk(described, "runs[1]") == 4
    with pytest.raises(KeyError, match="no item named 'c'"):
        walk(described, "ProcessingOutputConfig.Outputs['c']")
    assert duration("PT1H") == timedelta(hours=1) and duration("P30D") == timedelta(days=30) and duration("30d") == timedelta(days=30)
    with pytest.raises(DefinitionError):
        duration("soon")
    body = definition()
    assert parameter_values(body, [{"Name": "Threshold", "Value": "0.25"}]) == {"Score": "0.7", "Threshold": 0.25, "Status": "PendingManualApproval"}
    assert [s["Name"] for s in in_dependency_order(body["Steps"])] == ["Score", "Gate"]
