"""The serving code's contract in this venv: content types, batches, decisions, 4xx for bad input.

The same contract through the image's real serving stack: test_container_conformance.py."""
from __future__ import annotations

import json
import numpy as np
import pytest
import xgboost as xgb

from inference import inference
from processing.features import FEATURE_COLUMNS
from tests.helpers import ROOT
from tests.serving_cases import MALFORMED

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


def test_a_one_megabyte_transform_mini_batch_of_the_shortest_rows_is_scored(model):
    """Regression: at 1M payments step 06's batch transform failed with 413: a MultiRecord
    mini-batch of MaxPayloadInMB's least, 1 MB, held 11,572 rows and the model took 10,000."""
    row = ",".join(["0"] * N)
    count = (1024 * 1024) // (len(row) + 1)
    body, _ = inference.handle(model, "\n".join([row] * count).encode(), "text/csv", "text/csv")
    assert len(body.decode().splitlines()) == count


@pytest.mark.parametrize("case, body, content_type, accept, status, message", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_requests_get_a_4xx_with_a_reason(model, case, body, content_type, accept, status, message):
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


def test_an_empty_csv_field_or_a_json_null_is_a_missing_value(model):
    row = ["0.5"] * N
    row[3] = ""
    data = inference.parse_request(",".join(row) + "\n" + ",".join(["0.5"] * N), "text/csv")
    assert data.shape == (2, N) and np.isnan(data[0, 3]) and not np.isnan(data[1]).any()
    listed = inference.parse_request(json.dumps({"instances": [[None] + [0.5] * (N - 1)]}), "application/json")
    assert np.isnan(listed[0, 0]) and not np.isnan(listed[0, 1:]).any()
    body, _ = inference.handle(model, ",".join(row).encode(), "text/csv", "application/json")
    assert 0 <= json.loads(body)["predictions"][0]["fraud_probability"] <= 1


def test_the_endpoint_scores_with_the_trees_up_to_early_stoppings_best_round(tmp_path):
    """Regression: serving (and step 04) predicted with every tree, including the rounds
    after the best one that early stopping kept only to see the validation score fall."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, N))
    y = ((x[:, 0] + rng.normal(scale=2.0, size=600)) > 1).astype(int)  # noisy: validation peaks early
    train, valid = xgb.DMatrix(x[:400], label=y[:400]), xgb.DMatrix(x[400:], label=y[400:])
    booster = xgb.train({"objective": "binary:logistic", "eval_metric": "aucpr", "eta": 0.5, "max_depth": 6}, train, 200,
                        evals=[(valid, "validation")], early_stopping_rounds=10, verbose_eval=False)
    assert booster.num_boosted_rounds() > booster.best_iteration + 1
    booster.save_model(str(tmp_path / "model.ubj"))
    (tmp_path / "model.ubj").rename(tmp_path / "xgboost-model")
    (tmp_path / "threshold.json").write_text(json.dumps({"threshold": 0.5}))
    served = inference.model_fn(str(tmp_path))
    probabilities = inference.predict(x[400:], served)[:, 0]
    best = booster.predict(xgb.DMatrix(x[400:]), iteration_range=(0, booster.best_iteration + 1))
    np.testing.assert_allclose(probabilities, best, rtol=1e-6)
    assert not np.allclose(probabilities, booster.predict(xgb.DMatrix(x[400:])))
