"""Payments as the endpoint sees them: landed history, features computed client-side, CSV requests."""
from __future__ import annotations

import ctypes
import ctypes.util
import io
import json
import math
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from labkit.landed import objects
from processing.features import FEATURE_COLUMNS, build_features, own_history
from processing.labels import validate_labels
from processing.validation import validate_objects


def landed_history(s3, bucket: str, raw_prefix: str) -> tuple[pd.DataFrame, pd.Series]:
    """Every valid landed payment and its label known now (0/1, NaN if not known), by the
    same rules as the processing job: bad records, unreadable objects and bad labels are
    left out (step 02 reports them)."""
    now = pd.Timestamp.now(tz="UTC")
    raw = list(objects(s3, bucket, raw_prefix))
    transactions = validate_objects([body for _, body in raw], [key for key, _ in raw], not_after=now).frame
    labels = validate_labels([(key, io.BytesIO(body)) for key, body in objects(s3, bucket, "labels/") if key.endswith(".csv")], now)
    known = pd.Series(labels.table.column("is_fraud").to_numpy(), index=labels.table.column("transaction_id").to_pandas(), dtype=float)
    return transactions, transactions["transaction_id"].map(known)


def features_of(history: pd.DataFrame, labels: pd.Series, rows: pd.Index, label_delay_days: float) -> np.ndarray:
    """FEATURE_COLUMNS of the payments `rows` of `history` as the endpoint gets them, computed
    from their own customers' and terminals' payments only (`label_delay_days` from the
    feature schema, as the model was trained)."""
    mine = own_history(history, rows)
    return build_features(mine, labels[mine.index].fillna(0), label_delay_days=label_delay_days).loc[rows, FEATURE_COLUMNS].to_numpy(float)


def release_freed_memory() -> None:
    """Hand memory freed since (a landed history read, its features) back to the system:
    pyarrow's pool and the C heap keep it for reuse otherwise, and steps 08 and 09 then wait
    for minutes beside serving containers, holding memory they no longer use (what it hands
    back: history_200k_freed_but_held_mib and history_200k_after_release_mib, bench/memory.py)."""
    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    if libc and hasattr(trim := ctypes.CDLL(libc), "malloc_trim"):  # glibc only; elsewhere the pool's release is all
        trim.malloc_trim(0)


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
