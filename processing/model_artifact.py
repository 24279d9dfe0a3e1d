"""The model archives: the training job's model.tar.gz and the endpoint's, built from it.

SageMaker's framework containers run an entry point packed in model.tar.gz under code/
(SAGEMAKER_PROGRAM names it); with network isolation nothing can be fetched at start-up,
so everything the endpoint needs travels in the archive: xgboost-model (from training),
threshold.json (chosen on validation), code/inference.py and code/features.py (the one
feature module, so serving can never drift from training). Step 04 builds it on your
machine, the pipeline's evaluation job (evaluation_job.py) in the XGBoost image.
"""
from __future__ import annotations

import io
import json
import tarfile

MODEL_FILE = "xgboost-model"  # what the built-in XGBoost container writes and loads
SERVING_CODE = ("code/inference.py", "code/features.py")
SERVING_ENVIRONMENT = {
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


def inference_specification(image: str, model_data_url) -> dict:
    """A model package's InferenceSpecification for the archive: what step 04 and the
    pipeline's RegisterModel step register (`model_data_url` may be a pipeline value)."""
    return {
        # The XGBoost image runs our entry point (script mode): see inference/inference.py.
        "Containers": [{"Image": image, "ModelDataUrl": model_data_url, "Environment": SERVING_ENVIRONMENT}],
        "SupportedContentTypes": ["text/csv", "application/json"],  # what inference.py accepts
        "SupportedResponseMIMETypes": ["text/csv", "application/json"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large", "ml.c5.large"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
    }


def pack(files: dict[str, bytes]) -> bytes:
    """A model.tar.gz of `files` (name: content), members in name order with a fixed mtime:
    the same files give the same archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(archive: bytes) -> dict[str, bytes]:
    """Every file of a model.tar.gz, by name."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as source:
        return {member.name: source.extractfile(member).read() for member in source.getmembers() if member.isfile()}


def booster_bytes(training_artifact: bytes) -> bytes:
    """The saved booster inside the training job's model.tar.gz."""
    files = unpack(training_artifact)
    if MODEL_FILE not in files:
        raise ValueError(f"the training artifact has no {MODEL_FILE}: was it trained by the built-in XGBoost algorithm?")
    return files[MODEL_FILE]


def serving_artifact(training_artifact: bytes, threshold: float, code: dict[str, bytes]) -> bytes:
    """model.tar.gz for the endpoint: the booster, the threshold and `code` (SERVING_CODE)."""
    missing = set(SERVING_CODE) - set(code)
    if missing:
        raise ValueError(f"the serving artifact needs {sorted(missing)}")
    return pack({MODEL_FILE: booster_bytes(training_artifact), "threshold.json": json.dumps({"threshold": threshold}).encode(), **code})
