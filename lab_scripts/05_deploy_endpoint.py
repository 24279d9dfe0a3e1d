"""Step 05 — Deploy the approved model to a real-time endpoint (or check the deployment).

What you do: `npx cdk deploy --all -c fraudlab:modelPackageArn=<arn>` with the
ARN step 04 printed (the endpoint and the monitoring stack that watches it; this step
prints the command if the endpoint stack is missing), then run
`python lab_scripts/05_deploy_endpoint.py`.
What you see: the endpoint's status until it is InService (5-10 minutes on AWS), then
how it is set up: the model package it serves, the variant's instance type and count,
data capture (sampling %, where it lands in S3), target-tracking autoscaling on
invocations per instance, and the CloudWatch alarms on 5xx errors and model latency.

Where to look: SageMaker console > Inference > Endpoints > the endpoint (Monitor tab for
the metrics); CloudWatch > Alarms; S3 capture/.

Exam task statements: MLA-C01 3.1 (select deployment infrastructure: real-time vs
serverless vs batch), 3.2 (create and script infrastructure: IaC, autoscaling policies),
4.1 (monitor model inference: data capture), 4.3 (secure: VPC, network isolation, KMS);
MLS-C01 4.1 (availability and scalability: autoscaling, alarms), 4.3 (security: VPC,
KMS), 4.4 (deploy and operationalize ML solutions).
"""
from __future__ import annotations

from labkit import console, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.outputs import lab_outputs, stack_outputs, stack_prefix, stack_status
from labkit.sagemaker import approve_command, wait_for_job
from labkit.session import aws_session, client, each, stacks_command


def latest_package(sagemaker, group: str, status: str) -> str | None:
    packages = sagemaker.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus=status, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
    )["ModelPackageSummaryList"]
    return packages[0]["ModelPackageArn"] if packages else None


def approved_package(sagemaker, group: str) -> str | None:
    return latest_package(sagemaker, group, "Approved")


def main() -> int:
    step_parser(__doc__).parse_args()  # no options: --help shows what the step does
    session = aws_session()
    outputs = lab_outputs(session, "ModelPackageGroupName")
    sagemaker = client(session, "sagemaker")
    stack = f"{stack_prefix()}-Endpoint"
    if stack_status(session, stack) not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        arn = approved_package(sagemaker, outputs["ModelPackageGroupName"])
        if arn is None:
            pending = latest_package(sagemaker, outputs["ModelPackageGroupName"], "PendingManualApproval")
            if pending:
                raise LabError(
                    f"{pending} is PendingManualApproval (step 04 said why): approve it after review with `{approve_command(pending)}`, "
                    "or stream more payments (step 01, default 100,000) and rerun steps 02 and 03 with --rerun, then 04"
                )
            raise LabError("no approved model yet: run lab_scripts/04_evaluate_and_register.py first")
        raise LabError(f"stack {stack} is not deployed: run `{stacks_command('deploy', f'fraudlab:modelPackageArn={arn}')}`")
    endpoint_outputs = stack_outputs(session, stack)
    name = endpoint_outputs["EndpointName"]

    console.heading(f"Endpoint {name}")
    endpoint = wait_for_job(
        lambda n: sagemaker.describe_endpoint(EndpointName=n), name, "EndpointStatus",
        timeout_seconds=1800, done=("InService", "Failed"), success="InService",
    )
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    console.done(f"InService, serving {endpoint_outputs['ModelPackageArn']}")
    if "ServerlessConfig" in variant:
        serverless = variant["ServerlessConfig"]
        console.note(f"variant {variant['VariantName']}: serverless, {serverless['MemorySizeInMB']} MB, up to {serverless['MaxConcurrency']} concurrent")
    else:
        console.note(f"variant {variant['VariantName']}: {variant.get('InitialInstanceCount')} x {variant.get('InstanceType')}")
    capture = config.get("DataCaptureConfig") or {}
    if capture.get("EnableCapture"):
        console.note(f"data capture: {capture['InitialSamplingPercentage']} % of requests and responses to {capture['DestinationS3Uri']}/{name}/")
    targets = client(session, "application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{name}/variant/{variant['VariantName']}"]
    )["ScalableTargets"]
    for target in targets:
        console.note(f"autoscaling: {target['MinCapacity']}-{target['MaxCapacity']} instances, target tracking on invocations per instance")
    alarms = [
        a["AlarmName"] for a in each(client(session, "cloudwatch"), "describe_alarms", "MetricAlarms")
        if {"Name": "EndpointName", "Value": name} in a.get("Dimensions", [])
    ]
    console.note(f"alarms: {', '.join(sorted(alarms)) or 'none'}")
    results.record(f"{name} InService", endpoint_name=name)
    return 0


if __name__ == "__main__":
    run_step(main)
