"""CloudFormation, offline: the resources moto's CloudFormation skips, and `cdk synth/deploy/destroy` against it."""
