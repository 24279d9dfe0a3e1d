"""The malformed requests of inference/inference.py's docstring, each with the 4xx it must get.

Used twice: against the serving functions in this venv (test_inference.py) and through the
image's real serving stack (test_container_conformance.py), so the two cannot disagree."""
from __future__ import annotations

import json

from inference.inference import MAX_BODY_BYTES, MAX_ROWS
from processing.features import FEATURE_COLUMNS

N = len(FEATURE_COLUMNS)
ONE_ROW = ",".join(["0.5"] * N).encode()

# (case, body, content type, accept, status, words the reason contains)
MALFORMED = [
    ("csv with too few values", b"1,2,3", "text/csv", "", 400, f"has 3 values, expected {N}"),
    ("csv nan", ",".join(["nan"] * N).encode(), "text/csv", "", 400, "NaN and infinity are not allowed"),
    ("csv infinity", ",".join(["inf"] * N).encode(), "text/csv", "", 400, "NaN and infinity are not allowed"),
    ("csv header", ",".join(FEATURE_COLUMNS).encode(), "text/csv", "", 400, "not numeric CSV"),
    ("csv above float32", ",".join(["1e308"] * N).encode(), "text/csv", "", 400, "outside float32"),
    ("empty body", b"", "text/csv", "", 400, "empty request"),
    ("blank lines only", b"\n\n", "text/csv", "", 400, "empty request"),
    ("invalid json", b"{not json", "application/json", "", 400, "not valid JSON"),
    ("json nested too deeply", b"[" * 100_000, "application/json", "", 400, "not valid JSON"),
    ("json without instances", b'{"rows": []}', "application/json", "", 400, '{"instances": [...]}'),
    ("json named feature missing", json.dumps({"instances": [{"log_amount": 1}]}).encode(), "application/json", "", 400, "lacks"),
    ("json strings", json.dumps({"instances": [["a"] * N]}).encode(), "application/json", "", 400, "list of numbers"),
    ("json integer 10**400", ('{"instances": [[' + ",".join([str(10**400)] * N) + "]]}").encode(), "application/json", "", 400, "too large"),
    ("json above float32", json.dumps({"instances": [[1e308] * N]}).encode(), "application/json", "", 400, "outside float32"),
    ("body over 5 MB", b"x" * (MAX_BODY_BYTES + 1), "text/csv", "", 413, "exceeds"),
    ("too many rows", b"\n".join([ONE_ROW] * (MAX_ROWS + 1)), "text/csv", "", 413, "rows exceed"),
    ("unsupported content type", b"1", "application/x-protobuf", "", 415, "not supported"),
    ("unsupported accept", ONE_ROW, "text/csv", "application/xml", 406, "accept"),
]
