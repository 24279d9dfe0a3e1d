"""Serving code for the fraud endpoint: the XGBoost 3.2-0 container in script mode.

Choice: the built-in XGBoost *framework* container runs this entry point (packed with the
model in model.tar.gz under code/, SAGEMAKER_PROGRAM=inference.py). Requests carry the
features computed by the client with the shared module (processing/features.py, packed
beside this file): a payment's history (customer windows, terminal fraud rates) lives
with the caller, not in a network-isolated container. In return the endpoint answers
both CSV and JSON, returns probability *and* decision per record, and rejects malformed
input with a 4xx and a message instead of a stack trace.

Requests
  text/csv          one payment per line, the FEATURE_COLUMNS in order, no header, no label
  application/json  {"instances": [[...features...], ...]}
                    or {"instances": [{"log_amount": ..., ...}, ...]} (named features)
Responses (Accept)
  application/json  {"predictions": [{"fraud_probability": 0.93, "is_fraud": true}, ...]} (default)
  text/csv          "0.93,1" per line
Missing values: an empty CSV field or a JSON null (XGBoost follows its default branch);
"nan" or "inf" written out is refused. The drift monitor's completeness check sees them.
Errors, each with a JSON body {"error": ..., "message": ...} and the endpoint serving on:
  400 malformed body: not numeric CSV, wrong number of values, invalid or too deeply nested
      JSON, not {"instances": [...]}, a named feature missing, NaN or infinity, a value
      outside float32 (XGBoost's input type, about +-3.4e38), no rows
  413 body over 5 MB or more rows than a 1-MB batch transform mini-batch can hold (MAX_ROWS)
  415 content type other than text/csv or application/json
  406 Accept other than application/json or text/csv

How the container calls it: the image's script mode (sagemaker-containers) maps only its
own UnsupportedFormatError to a 4xx and every other exception of input_fn, predict_fn or
output_fn to a 500. So this module defines `transform_fn`, which sagemaker-containers lets
return a response with its own status, and names its steps parse_request / predict /
serialize (defining input_fn and friends beside transform_fn is refused by the container).
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost as xgb

try:
    from features import FEATURE_COLUMNS  # in the container: packed beside this file
except ModuleNotFoundError:
    from processing.features import FEATURE_COLUMNS  # in the repository

MODEL_FILE = "xgboost-model"
THRESHOLD_FILE = "threshold.json"
MAX_BODY_BYTES = 5 * 1024 * 1024  # SageMaker real-time payloads stop at 6 MB
# A batch transform's MultiRecord mini-batch is up to MaxPayloadInMB, at least 1 MB; of the
# shortest rows (one character per value, with its comma or newline: 2 bytes a feature)
# that is this many, and the model must take them all (a 1M-payment lab's day held more
# than 10,000 rows in its first MB, and a 10,000-row limit failed the job). The 5-MB body limit bounds the work.
MAX_ROWS = -(-(1024 * 1024) // (2 * len(FEATURE_COLUMNS)))
FLOAT32_MAX = float(np.finfo(np.float32).max)  # XGBoost predicts on float32: larger values become inf
CSV, JSON = "text/csv", "application/json"


class InferenceError(Exception):
    """A request the endpoint refuses; `status` is the HTTP status the caller gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class FraudModel:
    booster: xgb.Booster
    threshold: float
    rounds: tuple[int, int] = (0, 0)  # iteration_range: up to early stopping's best round ((0, 0): all)


def model_fn(model_dir: str) -> FraudModel:
    """Load the booster the way the built-in container saves it, and the decision threshold."""
    directory = Path(model_dir)
    booster = xgb.Booster()
    booster.load_model(bytearray((directory / MODEL_FILE).read_bytes()))
    if booster.num_features() != len(FEATURE_COLUMNS):
        raise RuntimeError(f"model expects {booster.num_features()} features, the feature module has {len(FEATURE_COLUMNS)}")
    threshold = json.loads((directory / THRESHOLD_FILE).read_text())["threshold"]
    best = booster.attr("best_iteration")  # saved by training with early stopping
    return FraudModel(booster, float(threshold), (0, int(best) + 1) if best is not None else (0, 0))


def parse_request(body: bytes | str, content_type: str) -> np.ndarray:
    """Validate and parse a request body into a (rows, features) float array."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise InferenceError(413, f"body of {len(raw)} bytes exceeds {MAX_BODY_BYTES}")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type == CSV:
        fast = _csv_matrix(raw)
        rows = fast if fast is not None else _csv_rows(raw)
    elif media_type == JSON:
        rows = _json_rows(raw)
    else:
        raise InferenceError(415, f"content type {content_type!r} not supported: use {CSV} or {JSON}")
    if len(rows) == 0:
        raise InferenceError(400, "empty request: send at least one payment")
    if len(rows) > MAX_ROWS:
        raise InferenceError(413, f"{len(rows)} rows exceed {MAX_ROWS} per request")
    for index, row in enumerate(rows if isinstance(rows, list) else ()):  # numpy's rows are complete
        if len(row) != len(FEATURE_COLUMNS):
            raise InferenceError(400, f"row {index + 1} has {len(row)} values, expected {len(FEATURE_COLUMNS)} (FEATURE_COLUMNS, no label)")
    data = np.asarray(rows, dtype=float)
    # An empty CSV field or a JSON null is a missing value (NaN), which XGBoost routes down
    # its learned default branch; only the drift monitor's completeness check notices.
    bad = np.abs(data) > FLOAT32_MAX  # inf, and finite values float32 cannot hold
    if bad.any():
        row, column = map(int, np.argwhere(bad)[0])
        raise InferenceError(
            400, f"row {row + 1} {FEATURE_COLUMNS[column]} is {data[row, column]}: outside float32 (|x| <= {FLOAT32_MAX:.4g}); NaN and infinity are not allowed"
        )
    return data


def _csv_matrix(raw: bytes) -> np.ndarray | None:
    """The common case, parsed in C by numpy: finite numbers, every row complete. None when
    the body needs _csv_rows, which reads it line by line and names what is wrong (and
    takes empty fields as missing values)."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return None
    try:
        data = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, comments=None, dtype=float)
    except ValueError:
        return None
    return data if data.shape[1] == len(FEATURE_COLUMNS) and np.isfinite(data).all() else None


def _csv_rows(raw: bytes) -> list[list[float]]:
    rows = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append([_csv_value(value) for value in line.split(",")])
        except ValueError:
            raise InferenceError(400, f"line {number} is not numeric CSV (no header, no label): {line[:80]!r}") from None
    return rows


def _csv_value(text: str) -> float:
    if not text.strip():
        return math.nan  # missing
    value = float(text)
    if not math.isfinite(value):
        raise InferenceError(400, f"{text.strip()!r} is not allowed: NaN and infinity are not allowed (leave the field empty for a missing value)")
    return value


def _json_rows(raw: bytes) -> list[list[float]]:
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise InferenceError(400, f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise InferenceError(400, "body is not valid JSON: nested too deeply") from None
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list):
        raise InferenceError(400, 'JSON body must be {"instances": [...]}')
    rows = []
    for index, instance in enumerate(instances, start=1):
        if isinstance(instance, dict):
            missing = [name for name in FEATURE_COLUMNS if name not in instance]
            if missing:
                raise InferenceError(400, f"instance {index} lacks {', '.join(missing[:5])}")
            instance = [instance[name] for name in FEATURE_COLUMNS]
        if not isinstance(instance, list) or not all(v is None or _is_number(v) for v in instance):
            raise InferenceError(400, f"instance {index} must be a list of numbers (null for missing) or an object of named features")
        if any(isinstance(v, float) and not math.isfinite(v) for v in instance):
            raise InferenceError(400, f"instance {index}: NaN and infinity are not allowed (use null for a missing value)")
        try:
            rows.append([math.nan if v is None else float(v) for v in instance])
        except OverflowError:  # a JSON integer such as 10**400 has no float
            raise InferenceError(400, f"instance {index}: a value is too large for a number (|x| <= {FLOAT32_MAX:.4g})") from None
    return rows


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def predict(data: np.ndarray, model: FraudModel) -> np.ndarray:
    """(probability, decision) per row: binary:logistic output of the trees up to the best
    round, against the threshold chosen on validation for the alert budget."""
    probabilities = model.booster.predict(xgb.DMatrix(data), iteration_range=model.rounds)
    return np.column_stack([probabilities, probabilities >= model.threshold])


def serialize(prediction: np.ndarray, accept: str) -> tuple[bytes, str]:
    """Serialize probability and decision per row in the requested format."""
    media_type = (accept or JSON).split(";")[0].strip().lower()
    if media_type in ("*/*", ""):
        media_type = JSON
    probabilities, decisions = prediction[:, 0], prediction[:, 1].astype(bool)
    if media_type == JSON:
        predictions = [{"fraud_probability": round(float(p), 6), "is_fraud": bool(d)} for p, d in zip(probabilities, decisions)]
        return json.dumps({"predictions": predictions}).encode(), JSON
    if media_type == CSV:
        return "".join(f"{p:.6f},{int(d)}\n" for p, d in zip(probabilities, decisions)).encode(), CSV
    raise InferenceError(406, f"accept {accept!r} not supported: use {JSON} or {CSV}")


def handle(model: FraudModel, body: bytes | str, content_type: str, accept: str) -> tuple[bytes, str]:
    """One /invocations request, start to end: (body, content type) or InferenceError."""
    return serialize(predict(parse_request(body, content_type), model), accept)


def transform_fn(model: FraudModel, request_body: bytes | str, content_type: str, accept: str):
    """The container's entry for each request (sagemaker-containers Transformer.transform).

    A refused request becomes its 4xx with a JSON reason; anything else that fails is a
    bug and stays a 500 (and an Invocation5XXErrors datapoint), as it should."""
    from sagemaker_containers.beta.framework import worker  # the serving container's own package

    try:
        body, content_type = handle(model, request_body, content_type, accept)
    except InferenceError as error:
        document = {"error": HTTP_REASONS.get(error.status, "Client Error"), "message": error.message}
        return worker.Response(response=json.dumps(document), status=error.status, mimetype=JSON)
    return worker.Response(response=body, status=200, mimetype=content_type)


HTTP_REASONS = {400: "Bad Request", 406: "Not Acceptable", 413: "Payload Too Large", 415: "Unsupported Media Type"}
