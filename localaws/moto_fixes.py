"""Behaviour of moto 5.2.5 that would make the local AWS disagree with real AWS, corrected.

Each fix names the gap it closes; `apply()` is idempotent and runs before the server starts.
"""
from __future__ import annotations

import functools
import gzip
import json
import warnings
from typing import Any

from moto import backends as moto_backends
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudwatch.models import CloudWatchBackend
from moto.firehose.models import FirehoseBackend
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.logs.models import LogGroup
from moto.moto_api._internal import mock_random
from moto.s3.models import FakeBucket, s3_backends
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ec2.models.subnets import SubnetRouteTableAssociation
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, Model, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

from localaws.cloudwatch import history

_moto_update_model_package = SageMakerModelBackend.update_model_package
_moto_put_metric_alarm = CloudWatchBackend.put_metric_alarm
_moto_create_endpoint_config_response = SageMakerResponse.create_endpoint_config
_moto_create_model_response = SageMakerResponse.create_model
_moto_model_from_cloudformation = Model.create_from_cloudformation_json
_moto_delete_stack = CloudFormationBackend.delete_stack
_moto_log_group_from_cloudformation = LogGroup.create_from_cloudformation_json


def _bucket_permission_without_conditions(self: FakeBucket, action: str, resource: str) -> PermissionResult:
    """moto evaluates bucket policies ignoring Condition blocks, so the lab's TLS-only
    statement (Deny s3:* when aws:SecureTransport is false) would deny every request.
    Statements with a condition cannot be judged here, so they are left out of the
    evaluation (the stored policy, as GetBucketPolicy returns it, is untouched)."""
    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    document["Statement"] = [s for s in statements if "Condition" not in s]
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)


def _put_s3_records_compressed(
    self: FirehoseBackend,
    delivery_stream_name: str,
    version_id: str,
    s3_destination: dict[str, Any],
    records: list[dict[str, bytes]],
) -> list[dict[str, str]]:
    """moto writes records to S3 as sent, ignoring the stream's CompressionFormat; real
    Firehose GZIPs the object and names it *.gz. Consumers must then really gunzip."""
    bucket_name = s3_destination["BucketARN"].split(":")[-1]
    key = self._format_s3_object_path(delivery_stream_name, version_id, s3_destination.get("Prefix", ""))
    body = b"".join(r["Data"] for r in records)
    if s3_destination.get("CompressionFormat") == "GZIP":
        body, key = gzip.compress(body), key + ".gz"
    s3_backends[self.account_id][self.partition].put_object(bucket_name, key, body)
    return [{"RecordId": str(mock_random.uuid4())} for _ in records]


def _update_model_package_keeping_metadata(self: SageMakerModelBackend, **update: Any) -> str:
    """moto replaces CustomerMetadataProperties with None when an update (e.g. approval)
    does not mention them; AWS leaves unmentioned fields as they are."""
    if update.get("customer_metadata_properties") is None:
        arn = update["model_package_arn"]
        package = self.model_packages.get(self.model_package_name_mapping.get(arn, arn))
        if package is not None:
            update["customer_metadata_properties"] = dict(package.customer_metadata_properties or {})
    return _moto_update_model_package(self, **update)


def _delete_model_package(self: SageMakerModelBackend, model_package_name: str) -> None:
    """moto has no DeleteModelPackage; teardown needs it (a group with versions cannot go)."""
    key = self.model_package_name_mapping.get(model_package_name, model_package_name)
    if self.model_packages.pop(key, None) is None:
        raise ValidationError(f"Model package {model_package_name} not found")
    for name, mapped in list(self.model_package_name_mapping.items()):
        if mapped == key:
            del self.model_package_name_mapping[name]


def _delete_model_package_response(self: SageMakerResponse) -> ActionResult:
    self.sagemaker_backend.delete_model_package(model_package_name=self._get_param("ModelPackageName"))
    return ActionResult({})


def _delete_model_package_group(self: SageMakerModelBackend, model_package_group_name: str) -> None:
    """moto has no DeleteModelPackageGroup; as on AWS, a group that still has versions stays."""
    if model_package_group_name not in self.model_package_groups:
        raise ValidationError(f"Model package group {model_package_group_name} not found")
    if any(p.model_package_group_name == model_package_group_name for p in self.model_packages.values()):
        raise ValidationError(f"Model package group {model_package_group_name} still has model packages: delete them first")
    del self.model_package_groups[model_package_group_name]


def _delete_model_package_group_response(self: SageMakerResponse) -> ActionResult:
    self.sagemaker_backend.delete_model_package_group(model_package_group_name=self._get_param("ModelPackageGroupName"))
    return ActionResult({})


def _put_metric_alarm_starting_without_data(self: CloudWatchBackend, name: str, *args: Any, **kwargs: Any):
    """AWS starts a new alarm in INSUFFICIENT_DATA until it is first evaluated; moto says OK."""
    new = name not in self.alarms
    alarm = _moto_put_metric_alarm(self, name, *args, **kwargs)
    if new:
        alarm.update_state("Unchecked: Initial alarm creation", None, "INSUFFICIENT_DATA")
    history.record(self, name, "ConfigurationUpdate", f'Alarm "{name}" {"created" if new else "updated"}', {"type": "Create" if new else "Update"})
    return alarm


def _is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _create_model_keeping_isolation(self: SageMakerResponse) -> ActionResult:
    """moto's Model always reports EnableNetworkIsolation false (it drops the parameter);
    SageMaker keeps what was asked, and the serving host runs the container by it."""
    result = _moto_create_model_response(self)
    model = self.sagemaker_backend.describe_model(self._get_param("ModelName"))
    model.enable_network_isolation = _is_true(self._get_param("EnableNetworkIsolation", False))
    return result


def _create_endpoint_config_keeping_shadows(self: SageMakerResponse) -> ActionResult:
    """moto drops an endpoint config's ShadowProductionVariants; SageMaker keeps them, and
    the serving host sends each shadow a copy of the endpoint's traffic."""
    result = _moto_create_endpoint_config_response(self)
    shadows = self._get_param("ShadowProductionVariants")
    if shadows:
        self.sagemaker_backend.endpoint_configs[self._get_param("EndpointConfigName")].shadow_production_variants = shadows
    return result


def _model_from_cloudformation_keeping_isolation(cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Model:
    """The same gap through CloudFormation (AWS::SageMaker::Model EnableNetworkIsolation)."""
    model = _moto_model_from_cloudformation(resource_name, cloudformation_json, account_id, region_name, **kwargs)
    model.enable_network_isolation = _is_true(cloudformation_json["Properties"].get("EnableNetworkIsolation", False))
    return model


def _delete_stack_releasing_exports(self: CloudFormationBackend, name_or_stack_id: str) -> None:
    """moto drops a stack whose resource deletion raised (e.g. a VPC with dependencies) but
    keeps its exports, so deploying the lab again after `cdk destroy` failed with "Export
    names must be unique". A stack that is gone exports nothing."""
    gone = [s for s in self.stacks.values() if name_or_stack_id in (s.stack_id, s.name)]
    try:
        _moto_delete_stack(self, name_or_stack_id)
    finally:
        for stack in gone:
            if stack.stack_id not in self.stacks:
                for name, export in list(self.exports.items()):
                    if export.exporting_stack_id == stack.stack_id:
                        del self.exports[name]


def _log_group_from_cloudformation_keeping_key(cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> LogGroup:
    """moto reads the API's `kmsKeyId` but not the template's `KmsKeyId`: an encrypted log
    group from CloudFormation came out unencrypted."""
    group = _moto_log_group_from_cloudformation(resource_name, cloudformation_json, account_id, region_name, **kwargs)
    group.kms_key_id = cloudformation_json["Properties"].get("KmsKeyId")
    return group


def _subnet_association_from_cloudformation(cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any):
    """moto's AWS::EC2::SubnetRouteTableAssociation never reached the route table: describe
    showed no subnet in any table, so nothing could tell which routes (the S3 gateway
    endpoint's) a subnet has. Associate for real; deleting the resource disassociates."""
    properties = cloudformation_json["Properties"]
    association = SubnetRouteTableAssociation(properties["RouteTableId"], properties["SubnetId"])
    association.association_id = ec2_backends[account_id][region_name].associate_route_table(
        properties["RouteTableId"], subnet_id=properties["SubnetId"]
    )
    return association


def _delete_subnet_association(self: SubnetRouteTableAssociation, account_id: str, region_name: str) -> None:
    table = ec2_backends[account_id][region_name].route_tables.get(self.route_table_id)
    if table is not None:
        table._associations.pop(getattr(self, "association_id", None), None)


_listed_moto_modules = moto_backends.list_of_moto_modules


@functools.cache
def _moto_modules_listed_once() -> tuple[str, ...]:
    """moto's dispatcher lists its package directory (a listdir and an isdir per entry) on
    every request to find the service; the installed modules do not change while it runs."""
    return tuple(_listed_moto_modules())


def apply() -> None:
    moto_backends.list_of_moto_modules = _moto_modules_listed_once
    # moto's serializer warns that its own DependencyViolation (a VPC deleted before its
    # dependents, which destroy.py then deletes) has no error shape: noise in `make lab`.
    warnings.filterwarnings("ignore", message=r"Exception\(DependencyViolationError\) with code DependencyViolation", category=UserWarning)
    CloudFormationBackend.delete_stack = _delete_stack_releasing_exports
    FakeBucket.get_permission = _bucket_permission_without_conditions
    FirehoseBackend.put_s3_records = _put_s3_records_compressed
    SageMakerModelBackend.update_model_package = _update_model_package_keeping_metadata
    SageMakerModelBackend.delete_model_package = _delete_model_package
    SageMakerResponse.delete_model_package = _delete_model_package_response
    SageMakerModelBackend.delete_model_package_group = _delete_model_package_group
    SageMakerResponse.delete_model_package_group = _delete_model_package_group_response
    CloudWatchBackend.put_metric_alarm = _put_metric_alarm_starting_without_data
    history.apply()
    SageMakerResponse.create_model = _create_model_keeping_isolation
    SageMakerResponse.create_endpoint_config = _create_endpoint_config_keeping_shadows
    Model.create_from_cloudformation_json = classmethod(_model_from_cloudformation_keeping_isolation)
    LogGroup.create_from_cloudformation_json = classmethod(_log_group_from_cloudformation_keeping_key)
    SubnetRouteTableAssociation.create_from_cloudformation_json = classmethod(_subnet_association_from_cloudformation)
    SubnetRouteTableAssociation.delete = _delete_subnet_association
    # moto names every endpoint after its logical id; the template's EndpointName is the name
    # (the endpoint's log group is created under it before the endpoint).
    FakeEndpoint.cloudformation_name_type = staticmethod(lambda: "EndpointName")
