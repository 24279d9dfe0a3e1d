"""The serving artifact: the trained booster plus the code and threshold the endpoint runs.

SageMaker's framework containers run an entry point packed in model.tar.gz under code/
(SAGEMAKER_PROGRAM names it); with network isolation nothing can be fetched at start-up,
so everything the endpoint needs travels in the archive: xgboost-model (from training),
threshold.json (chosen on validation), code/inference.py and code/features.py (the one
feature module, so serving can never drift from training).
"""
from __future__ import annotations

import io
import json
import tarfile

from labkit.sagemaker import ROOT

MODEL_FILE = "xgboost-model"
CODE = {"code/inference.py": ROOT / "inference/inference.py", "code/features.py": ROOT / "processing/features.py"}
ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    # Script mode installs code/ with `python -m pip install .` at start-up. The image's pip
    # (26.1) builds in an isolated environment that downloads setuptools: with network
    # isolation that fails and /ping never answers. The image already has setuptools, so
    # build against it (pip reads --no-build-isolation inverted: "false" turns isolation
    # off) and never look for an index, which does not exist in the VPC.
    "PIP_NO_BUILD_ISOLATION": "false",
    "PIP_NO_INDEX": "true",
}


def serving_artifact(training_artifact: bytes, threshold: float) -> bytes:
    """model.tar.gz for the endpoint, built from the training job's model.tar.gz."""
    with tarfile.open(fileobj=io.BytesIO(training_artifact), mode="r:gz") as archive:
        model = archive.extractfile(MODEL_FILE)
        if model is None:
            raise ValueError(f"the training artifact has no {MODEL_FILE}")
        booster = model.read()
    files = {MODEL_FILE: booster, "threshold.json": json.dumps({"threshold": threshold}).encode()}
    files.update({name: path.read_bytes() for name, path in CODE.items()})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0  # fixed mtime: same inputs, same archive
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
