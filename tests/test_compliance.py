"""cdk-nag and cfn-lint gate every synth; acknowledgements are few, specific and reasoned."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from localaws.cloudformation.synth import assembly_for
from tests.helpers import PACKAGE_ARN, ROOT, cfn_lint

# Every AwsSolutions finding the lab acknowledges. A new one must be added here on purpose.
def _execution_role(reads: tuple[str, ...], writes: tuple[str, ...]) -> set[str]:
    return {
        *(f"AwsSolutions-IAM5[Resource::FraudLab-Data-LabBucketArn/{p}*]" for p in reads + writes),
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:*:repository/sagemaker-*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]",
    }


# Every AwsSolutions finding the lab acknowledges (base stacks). A new one must be added here on purpose.
EXPECTED_ACKNOWLEDGEMENTS = {
    "FraudLab-Data/FirehoseDeliveryPolicy": {
        "AwsSolutions-IAM5[Resource::<LabBucket6E1759C5.Arn>/raw/transactions/*]",
        "AwsSolutions-IAM5[Resource::<LabBucket6E1759C5.Arn>/raw-errors/*]",
    },
    "FraudLab-MLPlatform/ProcessingPolicy": _execution_role(("raw/transactions/", "labels/", "code/"), ("features/", "quarantine/")),
    "FraudLab-MLPlatform/TrainingPolicy": _execution_role(("features/", "models/checkpoints/"), ("models/",)),
    "FraudLab-MLPlatform/ServingPolicy": _execution_role(("models/", "batch/input/"), ("capture/", "batch/output/")) | {
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:FraudLab-Endpoint-*]"},
    "FraudLab-MLPlatform/MonitoringPolicy": _execution_role(("code/", "features/", "capture/", "monitoring/"), ()),
    "FraudLab-MLPlatform/EvaluationPolicy": _execution_role(("code/", "features/", "models/"), ("evaluation/", "models/pipeline-")),
    "FraudLab-MLPlatform/PipelinePolicy": {
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:processing-job/pipelines-*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/pipelines-*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/fraudlab-fraud-detector/*]",
        "AwsSolutions-IAM5[Resource::FraudLab-Data-LabBucketArn/features/pipeline-*]",
        "AwsSolutions-IAM5[Resource::FraudLab-Data-LabBucketArn/evaluation/pipeline-*]",
    },
    "FraudLab-MLPlatform/AlertsInbox": {"AwsSolutions-SQS3"},
}


def lab_acknowledgements(assembly: Path) -> dict[str, dict[str, str]]:
    """construct path -> {AwsSolutions rule id: reason}, as Validations.acknowledge recorded
    them in the cloud assembly (each stack's <stack>.metadata.json, keyed by "/" + path)."""
    found: dict[str, dict[str, str]] = {}
    for stack in sorted(assembly.glob("*.metadata.json")):
        for path, entries in json.loads(stack.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    # Ids without a known namespace are recorded as "Annotation::<id>".
                    rules = {k.removeprefix("Annotation::"): v for k, v in entry["data"].items() if "AwsSolutions-" in k}
                    if rules:
                        found.setdefault(path.removeprefix("/"), {}).update(rules)
    return found


def test_acknowledgements_are_exactly_the_reviewed_ones(assembly):
    found = lab_acknowledgements(assembly)
    assert {path: set(rules) for path, rules in found.items()} == EXPECTED_ACKNOWLEDGEMENTS


def test_every_acknowledgement_gives_a_real_reason(assembly):
    for path, rules in lab_acknowledgements(assembly).items():
        for rule, reason in rules.items():
            assert len(reason) >= 40, (path, rule, reason)
            assert not any(word in reason.lower() for word in ("todo", "fixme", "later", "temporary")), reason


def test_every_acknowledgement_suppresses_a_finding(tmp_path, monkeypatch):
    """Synthesize every stack with acknowledgements recorded but not applied: each must then
    appear as a cdk-nag violation of its own construct (regression: AwsSolutions-S1 on the
    access-log bucket and IAM5[Action::ec2:Describe*] suppressed nothing)."""
    import aws_cdk
    from stacks import data_stack, endpoint_stack, lab, ml_platform_stack, monitoring_stack, network_stack

    acknowledged: list[tuple[str, str]] = []

    class RecordOnly:
        def __init__(self, scope) -> None:
            self.scope = scope

        def acknowledge(self, *acknowledgements) -> None:
            acknowledged.extend((self.scope.node.path, a.id) for a in acknowledgements)

        def add_plugins(self, *plugins) -> None:
            aws_cdk.Validations.of(self.scope).add_plugins(*plugins)

    for module in (data_stack, endpoint_stack, lab, ml_platform_stack, monitoring_stack, network_stack):
        if hasattr(module, "Validations"):
            monkeypatch.setattr(module, "Validations", type("Validations", (), {"of": staticmethod(RecordOnly)}))
    app = lab.new_app(outdir=str(tmp_path), overrides={"fraudlab:modelPackageArn": PACKAGE_ARN})
    lab.build_lab(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    findings = {(c["constructPath"], v["ruleName"]) for p in report["pluginReports"] for v in p["violations"] for c in v["violatingConstructs"]}
    assert len(acknowledged) >= 30
    idle = [(path, rule) for path, rule in acknowledged if not any(r == rule and (f == path or f.startswith(f"{path}/")) for f, r in findings)]
    assert idle == []


def test_cdk_nag_violation_stops_synth(tmp_path):
    """The plugin is not decorative: an unlogged, non-TLS bucket fails synthesis."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Noncompliant")
    s3.Bucket(stack, "Careless")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_cfn_lint_is_clean_on_every_template(assembly):
    result = cfn_lint(sorted(assembly.glob("*.template.json")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.fixture(scope="session")
def endpoints_assembly(tmp_path_factory) -> Path:
    """The app with the paid interface endpoints switched on (second synth, same process)."""
    return assembly_for({"fraudlab:interfaceEndpoints": "true"})


def test_interface_endpoints_flag_adds_the_six_endpoints_sagemaker_needs(endpoints_assembly):
    """Six for SageMaker code that calls AWS APIs, beside the drift job's CloudWatch one."""
    network = json.loads((endpoints_assembly / "FraudLab-Network.template.json").read_text())
    endpoints = [r["Properties"] for r in network["Resources"].values() if r["Type"] == "AWS::EC2::VPCEndpoint"]
    interface = [e for e in endpoints if e.get("VpcEndpointType") == "Interface"]
    services = sorted(json.dumps(e["ServiceName"]).split(".")[-1].strip('"]}') for e in interface)
    assert services == sorted(["api", "runtime", "sts", "logs", "api", "dkr", "monitoring"])
    assert all(e["PrivateDnsEnabled"] for e in interface)
    ingress = [
        r["Properties"]
        for k, r in network["Resources"].items()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress" and k.startswith("EndpointSecurityGroup")
    ]
    assert [(i["IpProtocol"], i["FromPort"], i["ToPort"]) for i in ingress] == [("tcp", 443, 443)]
    assert "SageMakerSecurityGroup" in json.dumps(ingress[0]["SourceSecurityGroupId"])


def test_cfn_lint_is_clean_with_interface_endpoints(endpoints_assembly):
    result = cfn_lint(sorted(endpoints_assembly.glob("*.template.json")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_app_py_by_hand_runs_on_the_pinned_node_and_a_malformed_context_is_one_line(tmp_path):
    """`cdk synth -c fraudlab:maxAzs=three` reaches app.py through CDK_CONTEXT_JSON: one line
    says what to fix. Regression: on Node 20 (past end-of-life) jsii printed an 11-line banner
    on every synthesis outside make (make silenced it), as app.py started the CDK's Node
    runtime (new_app), before the context is read. The package.json pin is what runs, by hand
    too: here with no JSII_* variables and no node_modules/.bin on PATH."""
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["node"]
    node = subprocess.run([str(ROOT / "node_modules/.bin/node"), "--version"], capture_output=True, text=True, check=True)
    assert node.stdout.strip() == f"v{pinned}" and pinned.startswith("22.")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "node_modules" not in p)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSII_")} | {
        "PATH": path, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps({"fraudlab:maxAzs": "three"})}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "fraudlab: context key fraudlab:maxAzs='three' is not a whole number: fix it in cdk.json or -c"], result.stderr


# --- checkov on every synthesized variant ---------------------------------------------------

CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_VARIANTS = {
    "base stacks": {},
    "with interface endpoints": {"fraudlab:interfaceEndpoints": "true"},
    "with the endpoint and the kit's monitor": {"fraudlab:modelPackageArn": PACKAGE_ARN},
    "serverless endpoint": {"fraudlab:modelPackageArn": PACKAGE_ARN, "fraudlab:serverless": "true"},
    "Model Monitor mode": {"fraudlab:modelPackageArn": PACKAGE_ARN, "fraudlab:driftMonitor": "modelMonitor"},
}


@dataclass
class CheckovResult:
    passed: int
    failed: list[tuple[str, str]]
    skipped: dict[tuple[str, str], str]  # (check, resource) -> the reason written in the template


def run_checkov(directories: dict[str, Path], scratch: Path) -> dict[str, CheckovResult]:
    """Name -> checkov's result on that directory's templates, from one checkov run over all of
    them (each run starts checkov afresh, which costs more than scanning a variant)."""
    for index, directory in enumerate(directories.values()):
        (scratch / str(index)).mkdir()
        for template in directory.glob("*.template.json"):
            (scratch / str(index) / template.name).write_bytes(template.read_bytes())
    completed = subprocess.run(
        [str(CHECKOV), "-d", str(scratch), "--framework", "cloudformation", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600,
    )
    reports = json.loads(completed.stdout)
    reports = reports if isinstance(reports, list) else [reports]

    def checks(kind: str, index: int):
        for report in reports:
            for check in report["results"][kind]:
                if check["file_path"].strip("/").split("/")[0] == str(index):
                    logical_id = check["resource"].split(".", 1)[1].rstrip("0123456789ABCDEF")  # without the CDK's hash
                    yield check["check_id"], logical_id, check["check_result"].get("suppress_comment", "")

    return {
        name: CheckovResult(
            passed=sum(1 for _ in checks("passed_checks", index)),
            failed=[(check, resource) for check, resource, _ in checks("failed_checks", index)],
            skipped={(check, resource): reason for check, resource, reason in checks("skipped_checks", index)},
        )
        for index, name in enumerate(directories)
    }


def security_doc() -> str:
    """docs/security.md: the checkov figures and every skip with its reason."""
    return (ROOT / "docs" / "security.md").read_text()


UNSKIPPED = "serverless endpoint, every skip removed"


@pytest.fixture(scope="module")
def checkov_runs(tmp_path_factory) -> dict[str, CheckovResult]:
    """Variant name -> checkov's result on its synthesized templates; and UNSKIPPED: the
    serverless variant (it holds every skip) with the skips taken out of its templates."""
    assemblies = {name: assembly_for(context) for name, context in CHECKOV_VARIANTS.items()}
    unskipped = tmp_path_factory.mktemp("unskipped")
    for template in assemblies["serverless endpoint"].glob("*.template.json"):
        body = json.loads(template.read_text())
        for resource in body["Resources"].values():
            resource.get("Metadata", {}).pop("checkov", None)
        (unskipped / template.name).write_text(json.dumps(body))
    return run_checkov({**assemblies, UNSKIPPED: unskipped}, tmp_path_factory.mktemp("checkov"))


@pytest.fixture(scope="module")
def checkov_results(checkov_runs) -> dict[str, CheckovResult]:
    """Variant name -> checkov's result on its synthesized templates."""
    return {name: checkov_runs[name] for name in CHECKOV_VARIANTS}


def documented_skips() -> set[tuple[str, str]]:
    documented = set()
    for line in security_doc().splitlines():
        if line.startswith("| CKV_"):
            checks, resources, _ = (cell.strip() for cell in line.strip("|").split("|"))
            names = [r.split(" (")[0].strip() for r in resources.split(",")]
            documented |= {(c.strip(), n) for c in checks.split(",") for n in names}
    return documented


def test_checkov_fails_nothing_and_skips_only_what_the_security_doc_explains(checkov_results):
    for variant, result in checkov_results.items():
        assert result.failed == [], variant
        assert set(result.skipped) <= documented_skips(), (variant, sorted(set(result.skipped) - documented_skips()))
        for skip, reason in result.skipped.items():
            assert len(reason) >= 40, (variant, skip, reason)


def test_every_checkov_skip_hides_a_real_finding(checkov_runs, checkov_results):
    """With the skips removed from the serverless variant's templates, checkov must fail each
    skipped check on its resource (a skip of nothing is a defect)."""
    unskipped = checkov_runs[UNSKIPPED]
    assert unskipped.skipped == {}
    every_skip = {skip for result in checkov_results.values() for skip in result.skipped}
    assert every_skip and every_skip <= set(unskipped.failed), sorted(every_skip - set(unskipped.failed))


def test_the_security_doc_shows_the_checkov_figures_as_measured(checkov_results):
    table = security_doc()
    for variant, r in checkov_results.items():
        strict = 100 * r.passed / (r.passed + len(r.failed) + len(r.skipped))
        row = f"| {variant} | {r.passed} | {len(r.failed)} | {len(r.skipped)} | {100 * r.passed / (r.passed + len(r.failed)):.1f} | {strict:.1f} |"
        assert row in table, row
