"""SageMaker image URIs for every region, resolved at synth by sagemaker-core.

A CfnMapping keyed by region lets CloudFormation pick the right account's image wherever
the stacks deploy; the lab steps read the result from stack outputs instead of importing
sagemaker-core themselves (3 s per step).
"""
from __future__ import annotations

from functools import lru_cache

from aws_cdk import CfnMapping
from constructs import Construct

# Built-in XGBoost 3.2-0 runs xgboost 3.2, the line pinned in requirements.txt; it also has
# pandas, numpy and boto3, so the processing jobs run in the same image (one image to trust).
XGBOOST = ("xgboost", "3.2-0")
MODEL_MONITOR = ("model-monitor", None)


def image_map(scope: Construct, construct_id: str, framework: str, version: str | None) -> CfnMapping:
    """Region -> {"uri": image URI} for every region sagemaker-core knows that has the image."""
    return CfnMapping(scope, construct_id, mapping={region: {"uri": uri} for region, uri in _uris(framework, version)})


@lru_cache(maxsize=None)  # 30+ regions take 2 s to resolve; several stacks ask for the same image
def _uris(framework: str, version: str | None) -> tuple[tuple[str, str], ...]:
    # Imported here, at synthesis: sagemaker-core is the slowest import of the stacks, and
    # every process that imports them without synthesizing (test workers that read cached
    # assemblies) would pay it.
    from sagemaker.core import image_uris

    found = []
    for region in _regions(image_uris.config_for_framework(framework)):
        try:
            found.append((region, image_uris.retrieve(framework, region=region, version=version)))
        except ValueError:
            continue  # not published in that region
    return tuple(found)


def _regions(config: dict) -> list[str]:
    """Every region named in an image config's registries (each image has its own list:
    XGBoost is published in regions Model Monitor is not)."""
    regions: set[str] = set()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            regions.update(node.get("registries", {}))
            stack.extend(node.values())
    return sorted(regions)
