"""Synthesize the CDK app in-process (no CDK CLI needed), with cdk-nag enforced as usual."""
from __future__ import annotations

import os
from pathlib import Path


def synthesize(outdir: Path | str) -> Path:
    """Write the lab's cloud assembly to `outdir` and return its path."""
    # No credentials or network at synth: never ask EC2 metadata, never phone home.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from stacks.lab import build_lab, new_app  # imported late: it starts the jsii runtime

    app = new_app(outdir=str(outdir))
    build_lab(app)
    app.synth()
    return Path(outdir)
