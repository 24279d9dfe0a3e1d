"""The SageMaker runtime and its containers, offline: endpoints served by the image's own serving stack."""
