#!/usr/bin/env python3
"""CDK entry point: `cdk synth`, `cdk deploy --all`, `cdk destroy --all`."""
import sys

from stacks.config import ConfigError
from stacks.lab import build_lab, new_app

app = new_app()
try:
    build_lab(app)
except ConfigError as error:
    sys.exit(f"fraudlab: {error}")
app.synth()
