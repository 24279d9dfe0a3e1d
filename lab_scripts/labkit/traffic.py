"""Payments as the endpoint sees them: landed history, features computed client-side, CSV requests."""
from __future__ import annotations

import io
import json
import math
import time

import numpy as np
import pandas as pd

from processing.validation import validate_objects


def landed_history(s3, bucket: str, raw_prefix: str) -> tuple[pd.DataFrame, pd.Series]:
    """Every valid landed payment and its label (0/1, NaN if not known)."""
    bodies = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=raw_prefix):
        for item in page.get("Contents", []):
            bodies.append(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    transactions = validate_objects(bodies).frame  # the same validation as the processing job
    labels = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="labels/"):
        for item in page.get("Contents", []):
            labels.append(pd.read_csv(io.BytesIO(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()), dtype={"transaction_id": str}))
    known = pd.concat(labels).drop_duplicates("transaction_id", keep="last").set_index("transaction_id")["is_fraud"] if labels else pd.Series(dtype=float)
    return transactions, transactions["transaction_id"].map(known)


def csv_body(rows: np.ndarray) -> str:
    """CSV without header or label; a missing value (NaN) is an empty field."""
    return "\n".join(",".join("" if math.isnan(v) else f"{v:.6g}" for v in row) for row in rows)


def invoke(runtime, endpoint: str, rows: np.ndarray) -> tuple[list[dict], float]:
    """Score `rows` in one request: (predictions, client latency in ms)."""
    started = time.perf_counter()
    response = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Accept="application/json", Body=csv_body(rows))
    reply = json.loads(response["Body"].read())
    return reply["predictions"], (time.perf_counter() - started) * 1000


def send(runtime, endpoint: str, rows: np.ndarray, batch: int = 100) -> int:
    """Send `rows` in requests of `batch`; returns the number of requests."""
    requests = 0
    for start in range(0, len(rows), batch):
        invoke(runtime, endpoint, rows[start : start + batch])
        requests += 1
    return requests
