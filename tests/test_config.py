"""cdk.json context is validated once, with one clear line per mistake."""
from __future__ import annotations

import json

import pytest
from aws_cdk import App
from aws_cdk.aws_logs import RetentionDays

from stacks.config import ConfigError, LabConfig
from stacks.lab import CDK_JSON

DEFAULTS = json.loads(CDK_JSON.read_text())["context"]


def config_with(**changes) -> LabConfig:
    context = {**DEFAULTS, **{f"fraudlab:{k}": v for k, v in changes.items()}}
    context = {k: v for k, v in context.items() if v is not None}
    return LabConfig.from_context(App(context=context).node)


def test_defaults_from_cdk_json():
    config = config_with()
    assert (config.max_azs, config.interface_endpoints) == (2, False)
    assert (config.firehose_buffer_mib, config.firehose_buffer_seconds) == (5, 60)
    assert config.log_retention == RetentionDays.ONE_WEEK
    assert config.stack_prefix == "FraudLab"


def test_cli_strings_are_accepted():
    """`cdk deploy -c fraudlab:maxAzs=3 -c fraudlab:interfaceEndpoints=true` arrives as strings."""
    config = config_with(maxAzs="3", interfaceEndpoints="true", firehoseBufferSeconds="900")
    assert (config.max_azs, config.interface_endpoints, config.firehose_buffer_seconds) == (3, True, 900)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"maxAzs": "three"}, "fraudlab:maxAzs='three' is not a whole number"),
        ({"maxAzs": 1}, "fraudlab:maxAzs=1 must be between 2 and 3"),
        ({"maxAzs": True}, "is not a whole number"),
        ({"firehoseBufferMiB": 0}, "fraudlab:firehoseBufferMiB=0 must be between 1 and 128"),
        ({"firehoseBufferSeconds": 901}, "must be between 0 and 900"),
        ({"interfaceEndpoints": "maybe"}, "fraudlab:interfaceEndpoints='maybe' is not true or false"),
        ({"logRetentionDays": 10}, "fraudlab:logRetentionDays=10 must be one of [1, 3, 5, 7, 14"),
        ({"stackPrefix": "Fraud Lab"}, "fraudlab:stackPrefix='Fraud Lab' must match"),
        ({"modelPackageGroupName": "bad_name"}, "fraudlab:modelPackageGroupName='bad_name' must match"),
        ({"maxAzs": None}, "context key fraudlab:maxAzs is missing: set it in cdk.json"),
    ],
)
def test_malformed_values_name_the_key_and_the_fix(changes, message):
    with pytest.raises(ConfigError) as raised:
        config_with(**changes)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
