"""`cdk deploy`, offline: bootstrap the local AWS, publish assets, create every stack.

Works on a synthesized cloud assembly (cdk.out) through the ordinary CloudFormation
API of the local AWS, in dependency order, so what the lab scripts discover offline
(stack outputs, exports, resources) is what the real templates produce.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from localaws.cloudformation.resources import NOT_EMULATED

# The default CDK synthesizer's qualifier: templates check this SSM parameter's version.
BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "30"


class DeployError(RuntimeError):
    """A stack failed to materialize; the message names the stack and the reason."""


@dataclass
class StackReport:
    name: str
    status: str
    created: dict[str, str] = field(default_factory=dict)  # logical id -> resource type
    not_emulated: dict[str, str] = field(default_factory=dict)  # logical id -> resource type
    outputs: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the learner, naming what was not emulated (and where it says why)."""
        line = f"✓ {self.name}: {len(self.created)} resources"
        if self.not_emulated:
            kinds = ", ".join(sorted(set(self.not_emulated.values())))
            line += f"; not emulated: {kinds} (a custom-resource Lambda: why in localaws/cloudformation/resources.py)"
        return line


def deploy_assembly(assembly_dir: Path | str, session: boto3.Session, only: set[str] | None = None) -> list[StackReport]:
    """Create every stack of the cloud assembly (or those named in `only`) in the local AWS."""
    assembly_dir = Path(assembly_dir)
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    stacks = [(name, props) for name, props in _stacks_in_dependency_order(manifest) if only is None or name in only]
    account = session.client("sts").get_caller_identity()["Account"]
    _bootstrap(session, account)
    _publish_assets(assembly_dir, session, account)
    return [_create_stack(assembly_dir, name, props, session) for name, props in stacks]


def _stacks_in_dependency_order(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    artifacts = manifest["artifacts"]
    stacks = {n: a for n, a in artifacts.items() if a["type"] == "aws:cloudformation:stack"}
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in stacks[name].get("dependencies", []):
            if dependency in stacks:
                visit(dependency)
        ordered.append(name)

    for name in stacks:
        visit(name)
    return [(name, stacks[name]) for name in ordered]


def _bootstrap(session: boto3.Session, account: str) -> None:
    """What `cdk bootstrap` leaves behind that templates and assets rely on."""
    session.client("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version",
        Value=BOOTSTRAP_VERSION,
        Type="String",
        Overwrite=True,
    )
    s3 = session.client("s3")
    bucket = _assets_bucket(account, session.region_name)
    location = {} if session.region_name == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": session.region_name}}
    try:
        s3.create_bucket(Bucket=bucket, **location)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass  # bootstrapped by an earlier deploy


def _assets_bucket(account: str, region: str) -> str:
    return f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{account}-{region}"


def _publish_assets(assembly_dir: Path, session: boto3.Session, account: str) -> None:
    """Zip and upload file assets (e.g. Lambda code) the way cdk-assets does."""
    s3 = session.client("s3")
    for assets_file in assembly_dir.glob("*.assets.json"):
        for asset in json.loads(assets_file.read_text()).get("files", {}).values():
            source = assembly_dir / asset["source"]["path"]
            body = _zip_dir(source) if asset["source"].get("packaging") == "zip" else source.read_bytes()
            for destination in asset["destinations"].values():
                bucket = destination["bucketName"].replace("${AWS::AccountId}", account)
                bucket = bucket.replace("${AWS::Region}", session.region_name)
                s3.put_object(Bucket=bucket, Key=destination["objectKey"], Body=body)


def _zip_dir(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory))
    return buffer.getvalue()


def _create_stack(assembly_dir: Path, name: str, artifact: dict[str, Any], session: boto3.Session) -> StackReport:
    props = artifact["properties"]
    stack_name = props.get("stackName", name)
    template = json.loads((assembly_dir / props["templateFile"]).read_text())
    template, skipped = without_not_emulated(template)
    cfn = session.client("cloudformation")
    existing = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == stack_name and s["StackStatus"] != "DELETE_COMPLETE"]
    if existing:
        # Offline there is no stack update: say so rather than keep a stale stack silently.
        deployed = cfn.get_template(StackName=stack_name)["TemplateBody"]
        deployed = json.loads(deployed) if isinstance(deployed, str) else deployed
        if deployed != template:
            raise DeployError(f"{stack_name} is deployed with another template; restart the local AWS (make local-down local-up)")
    else:
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            Tags=[{"Key": k, "Value": v} for k, v in props.get("tags", {}).items()],
        )
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise DeployError(f"{stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}".strip())
    # moto lists a type it silently skipped as an entry with an empty logical id.
    listed = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    created = {r["LogicalResourceId"]: r["ResourceType"] for r in listed if r["LogicalResourceId"]}
    missing = sorted(f"{lid} ({r['Type']})" for lid, r in template["Resources"].items() if lid not in created)
    if missing:
        raise DeployError(f"{stack_name}: not materialized and not on the not-emulated list: {', '.join(missing)}")
    return StackReport(
        name=stack_name,
        status=stack["StackStatus"],
        created=created,
        not_emulated=skipped,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    )


def without_not_emulated(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The template minus resources of NOT_EMULATED types; refuses if anything still needs them."""
    resources = template["Resources"]
    skipped = {lid: r["Type"] for lid, r in resources.items() if r["Type"] in NOT_EMULATED}
    kept = {}
    for logical_id, resource in resources.items():
        if logical_id in skipped:
            continue
        resource = dict(resource)
        depends_on = resource.get("DependsOn")
        if depends_on is not None:
            remaining = [d for d in ([depends_on] if isinstance(depends_on, str) else depends_on) if d not in skipped]
            resource["DependsOn"] = remaining
            if not remaining:
                del resource["DependsOn"]
        used = _referenced_ids(resource) & skipped.keys()
        if used:
            raise DeployError(f"{logical_id} uses {sorted(used)}, which the local AWS does not emulate")
        kept[logical_id] = resource
    used = _referenced_ids(template.get("Outputs", {})) & skipped.keys()
    if used:
        raise DeployError(f"stack outputs use {sorted(used)}, which the local AWS does not emulate")
    return {**template, "Resources": kept}, skipped


def _referenced_ids(node: Any) -> set[str]:
    """Logical ids named by Ref / Fn::GetAtt anywhere inside a template fragment."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            found |= _referenced_ids(value)
    elif isinstance(node, list):
        for item in node:
            found |= _referenced_ids(item)
    return found
