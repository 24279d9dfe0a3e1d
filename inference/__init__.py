"""Code that runs in the SageMaker serving container (flat under code/ there)."""
