"""The lab's SageMaker Pipeline as the CDK app defines it: the steps and parameters the
issue names, every step's Arguments a valid Create* request for AWS's own API model
(botocore's), the definition accepted by CreatePipeline's checks, and the pipeline role
allowed exactly what the steps do."""
from __future__ import annotations

import json

import botocore.session
from botocore.validate import ParamValidator

from localaws.cloudformation.deploy import deploy_assembly
from localaws.sagemaker.pipeline_definition import all_steps, validate
from localaws.server import LocalAws
from stacks.pipeline_definition import PARAMETERS, PipelineResources, pipeline_definition

RESOURCES = PipelineResources(
    bucket="lab-bucket", raw_prefix="raw/transactions/", labels_prefix="labels/", key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
    processing_role_arn="arn:aws:iam::123456789012:role/p", training_role_arn="arn:aws:iam::123456789012:role/t",
    evaluation_role_arn="arn:aws:iam::123456789012:role/e", image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
    subnet_ids=["subnet-1", "subnet-2"], security_group_id="sg-1", model_package_group_name="fraudlab-fraud-detector",
)
# Step type -> (the API operation its Arguments are the request of, the name field the service fills in)
OPERATIONS = {"Processing": ("CreateProcessingJob", {"ProcessingJobName": "pipelines-x-Features-y"}),
              "Training": ("CreateTrainingJob", {"TrainingJobName": "pipelines-x-Train-y"}),
              "RegisterModel": ("CreateModelPackage", {})}


def placeholders(value):
    """Run-time values replaced by a string of the kind they resolve to, for shape checks."""
    if isinstance(value, dict):
        if set(value) & {"Get", "Std:Join", "Std:JsonGet"}:
            return "resolved-at-run-time"
        return {k: placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [placeholders(v) for v in value]
    return value


def test_steps_run_features_training_evaluation_then_the_gate_registers_or_fails():
    definition = pipeline_definition(RESOURCES)
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("Features", "Processing"), ("Train", "Training"), ("Evaluate", "Processing"), ("Gate", "Condition")]
    gate = definition["Steps"][3]["Arguments"]
    assert [s["Type"] for s in gate["IfSteps"]] == ["RegisterModel"] and [s["Type"] for s in gate["ElseSteps"]] == ["Fail"]
    condition = gate["Conditions"][0]
    assert condition["Type"] == "GreaterThanOrEqualTo" and condition["RightValue"] == {"Get": "Parameters.Margin"}
    assert condition["LeftValue"]["Std:JsonGet"] == {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": "gate.pr_auc_lift"}
    evaluate = definition["Steps"][2]
    assert evaluate["PropertyFiles"] == [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}]
    assert {p["Name"] for p in definition["Parameters"]} == set(PARAMETERS) >= {
        "InputData", "ProcessingInstanceType", "TrainingInstanceType", "ModelApprovalStatus", "Margin"}
    validate(json.dumps(definition))


def test_every_step_is_a_valid_request_of_its_api_operation():
    model = botocore.session.get_session().get_service_model("sagemaker")
    checked = []
    for step in all_steps(pipeline_definition(RESOURCES)["Steps"]):
        if step["Type"] not in OPERATIONS:
            continue
        operation, filled_in = OPERATIONS[step["Type"]]
        report = ParamValidator().validate({**filled_in, **placeholders(step["Arguments"])}, model.operation_model(operation).input_shape)
        assert not report.has_errors(), f"{step['Name']}: {report.generate_report()}"
        checked.append(step["Name"])
    assert checked == ["Features", "Train", "Evaluate", "Register"]


def test_jobs_run_isolated_and_encrypted_as_the_numbered_steps_run_them():
    for step in all_steps(pipeline_definition(RESOURCES)["Steps"]):
        arguments = step["Arguments"]
        if step["Type"] == "Processing":
            assert arguments["NetworkConfig"]["EnableNetworkIsolation"] is True
            assert arguments["NetworkConfig"]["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1", "subnet-2"]}
            assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == RESOURCES.key_arn
        if step["Type"] == "Training":
            assert arguments["EnableNetworkIsolation"] is True and arguments["OutputDataConfig"]["KmsKeyId"] == RESOURCES.key_arn
            assert arguments["HyperParameters"]["scale_pos_weight"]["Std:JsonGet"]["Path"] == "training.scale_pos_weight"


def test_the_deployed_pipeline_is_the_definition_and_its_role_may_run_it(assembly):
    # A local AWS of its own, in a region of its own: moto's state is per process, and the
    # same stacks deployed beside the shared local AWS's (us-east-1) would clash with them.
    with LocalAws(region="us-west-2") as server:
        deploy_assembly(assembly, server.session(), only={"FraudLab-Network", "FraudLab-Data", "FraudLab-MLPlatform"})
        described = server.session().client("sagemaker").describe_pipeline(PipelineName="FraudLab-MLPlatform-training")
    definition = validate(described["PipelineDefinition"])
    assert [s["Name"] for s in all_steps(definition["Steps"])] == ["Features", "Train", "Evaluate", "Gate", "Register", "GateFailed"]
    bucket = [s for s in definition["Parameters"] if s["Name"] == "InputData"][0]["DefaultValue"]
    assert bucket.startswith("s3://fraudlab-data-labbucket") and bucket.endswith("/raw/transactions/")
    resources = json.loads((assembly / "FraudLab-MLPlatform.template.json").read_text())["Resources"]
    policy = next(r for r in resources.values() if r["Type"] == "AWS::IAM::Policy" and "PipelinePolicy" in json.dumps(r["Properties"]["PolicyName"]))
    actions = {a for statement in policy["Properties"]["PolicyDocument"]["Statement"] for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    assert {"sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob", "sagemaker:CreateModelPackage", "iam:PassRole", "s3:GetObject"} <= actions
    assert not any(a.endswith(":*") or a == "*" for a in actions)
