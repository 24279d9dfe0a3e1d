"""The serving artifact built from this checkout's code (processing/model_artifact.py has
the archive's layout), and the serving container's environment that runs it."""
from __future__ import annotations

from labkit.sagemaker import ROOT
from processing import model_artifact

CODE = {"code/inference.py": ROOT / "inference/inference.py", "code/features.py": ROOT / "processing/features.py"}
ENVIRONMENT = model_artifact.SERVING_ENVIRONMENT


def serving_artifact(training_artifact: bytes, threshold: float) -> bytes:
    """model.tar.gz for the endpoint, built from the training job's model.tar.gz."""
    return model_artifact.serving_artifact(training_artifact, threshold, {name: path.read_bytes() for name, path in CODE.items()})
