"""CDK stacks of the FraudLab lab: wiring only, one stack per concern."""
