"""The SageMaker control plane, offline: the calls moto records but does not run (jobs, Model Monitor)."""
