"""Synthesize the CDK app in-process (no CDK CLI needed), with cdk-nag enforced as usual."""
from __future__ import annotations

import os

# Set before jsii starts: synth must never ask EC2 metadata; quiet jsii's Node 20 banner.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from pathlib import Path  # noqa: E402

from aws_cdk import App  # noqa: E402

from stacks.lab import build_lab, new_app  # noqa: E402


def synthesize(outdir: Path | str, overrides: dict | None = None) -> App:
    """Write the lab's cloud assembly to `outdir`; returns the app (its .outdir is the path)."""
    app = new_app(outdir=str(outdir), overrides=overrides)
    build_lab(app)
    app.synth()
    return app
