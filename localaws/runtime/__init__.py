"""The SageMaker runtime, offline: endpoints, their model servers and data capture."""
