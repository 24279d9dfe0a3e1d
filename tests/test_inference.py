"""The serving code's contract: content types, batches, decisions, and 4xx for bad input."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import xgboost as xgb

from inference import inference
from processing.features import FEATURE_COLUMNS
from tests.helpers import ROOT

N = len(FEATURE_COLUMNS)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model directory as the serving artifact unpacks: xgboost-model, threshold.json, code/."""
    directory = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, N))
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=(x[:, 0] > 0.5).astype(int)), 10)
    booster.save_model(str(directory / "model.ubj"))
    (directory / "model.ubj").rename(directory / "xgboost-model")
    (directory / "threshold.json").write_text(json.dumps({"threshold": 0.5}))
    (directory / "code").mkdir()
    for source, name in ((ROOT / "inference/inference.py", "inference.py"), (ROOT / "processing/features.py", "features.py")):
        (directory / "code" / name).write_bytes(source.read_bytes())
    return directory


@pytest.fixture(scope="module")
def model(model_dir):
    return inference.model_fn(str(model_dir))


def csv_rows(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(f"{v:.6g}" for v in row) for row in rows).encode()


ROWS = np.vstack([np.full(N, 2.0), np.full(N, -2.0), np.zeros(N)])


def test_csv_batch_in_json_out_with_probability_and_decision(model):
    body, content_type = inference.handle(model, csv_rows(ROWS), "text/csv", "application/json")
    predictions = json.loads(body)["predictions"]
    assert content_type == "application/json" and len(predictions) == 3
    assert predictions[0]["is_fraud"] is True and predictions[1]["is_fraud"] is False
    assert all(0 <= p["fraud_probability"] <= 1 for p in predictions)
    assert all((p["fraud_probability"] >= 0.5) == p["is_fraud"] for p in predictions)


def test_json_in_csv_out_and_named_features(model):
    named = {"instances": [dict(zip(FEATURE_COLUMNS, ROWS[0]))]}
    listed = {"instances": ROWS[:1].tolist()}
    for document in (named, listed):
        body, content_type = inference.handle(model, json.dumps(document).encode(), "application/json; charset=utf-8", "text/csv")
        probability, decision = body.decode().strip().split(",")
        assert content_type == "text/csv" and decision == "1" and float(probability) >= 0.5


def test_default_accept_is_json(model):
    for accept in ("", "*/*"):
        assert inference.handle(model, csv_rows(ROWS[:1]), "text/csv", accept)[1] == "application/json"


@pytest.mark.parametrize(
    "body, content_type, accept, status, message",
    [
        (b"1,2,3", "text/csv", "", 400, f"has 3 values, expected {N}"),
        (",".join(["nan"] * N).encode(), "text/csv", "", 400, "NaN and infinity are not allowed"),
        (",".join(FEATURE_COLUMNS).encode(), "text/csv", "", 400, "not numeric CSV"),
        (b"", "text/csv", "", 400, "empty request"),
        (b"\n\n", "text/csv", "", 400, "empty request"),
        (b"{not json", "application/json", "", 400, "not valid JSON"),
        (b'{"rows": []}', "application/json", "", 400, '{"instances": [...]}'),
        (json.dumps({"instances": [{"log_amount": 1}]}).encode(), "application/json", "", 400, "lacks"),
        (json.dumps({"instances": [["a"] * N]}).encode(), "application/json", "", 400, "list of numbers"),
        (b"x" * (inference.MAX_BODY_BYTES + 1), "text/csv", "", 413, "exceeds"),
        (b"1", "application/x-protobuf", "", 415, "not supported"),
        (csv_rows(ROWS[:1]), "text/csv", "application/xml", 406, "accept"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_reason(model, body, content_type, accept, status, message):
    with pytest.raises(inference.InferenceError) as raised:
        inference.handle(model, body, content_type, accept)
    assert raised.value.status == status
    assert message in raised.value.message


def test_a_model_that_does_not_match_the_feature_module_is_refused(tmp_path):
    x = np.random.default_rng(1).normal(size=(50, 3))
    xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=(x[:, 0] > 0).astype(int)), 2).save_model(str(tmp_path / "m.ubj"))
    (tmp_path / "m.ubj").rename(tmp_path / "xgboost-model")
    (tmp_path / "threshold.json").write_text('{"threshold": 0.5}')
    with pytest.raises(RuntimeError, match="expects 3 features"):
        inference.model_fn(str(tmp_path))


def post(port: int, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_model_server_serves_the_packed_entry_point_and_survives_bad_requests(model_dir):
    server = subprocess.Popen([sys.executable, "-m", "localaws.runtime.model_server", "--model-dir", str(model_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10) as ping:
            assert ping.status == 200
        status, body = post(port, b"1,2", "text/csv")
        assert status == 400 and "expected" in json.loads(body)["message"]
        status, body = post(port, b"{}", "application/octet-stream")
        assert status == 415
        status, body = post(port, csv_rows(ROWS), "text/csv")
        assert status == 200 and len(json.loads(body)["predictions"]) == 3
    finally:
        server.terminate()
        server.wait(timeout=10)
