"""Code that runs inside the SageMaker Processing container (flat on its code path there)."""
