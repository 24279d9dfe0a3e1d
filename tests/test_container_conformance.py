"""Container conformance: the kit's serving artifact served by the XGBoost 3.2-0 image's own stack.

The artifact step 04 registers (labkit.model_artifact) is started as SageMaker starts it:
the image environment (Python 3.12, the image's pins), the Model's Environment, network
isolation (`unshare --net`), script mode's `pip install .` of code/, gunicorn with the real
sagemaker-containers Transformer and Worker. Then /ping, valid CSV and JSON, and every
malformed case of inference.py's docstring, which must come back as its 4xx.
"""
from __future__ import annotations

import io
import json
import tarfile
import warnings

import numpy as np
import pytest
import xgboost as xgb

from labkit.model_artifact import serving_artifact
from localaws.runtime import image_env
from localaws.runtime.container import ContainerFailed, start_serving_container
from processing.features import FEATURE_COLUMNS
from processing.model_artifact import MODEL_FILE, pack
from tests.helpers import TEST_MODEL_ENVIRONMENT
from tests.serving_cases import MALFORMED, N

ROWS = np.vstack([np.full(N, 2.0), np.full(N, -2.0), np.zeros(N)])


def _training_artifact() -> bytes:
    """model.tar.gz as the built-in XGBoost training job writes it (xgboost-model inside)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, N))
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=(x[:, 0] > 0.5).astype(int)), 10)
    return pack({MODEL_FILE: bytes(booster.save_raw("ubj"))})


@pytest.fixture(scope="module")
def archive() -> bytes:
    return serving_artifact(_training_artifact(), threshold=0.5)


@pytest.fixture(scope="module")
def container(archive):
    _, why_not = image_env.network_sandbox()
    if why_not:
        warnings.warn(f"network isolation NOT verified: {why_not}; the container runs with this machine's network")
    serving = start_serving_container("conformance/AllTraffic", archive, TEST_MODEL_ENVIRONMENT, network_isolation=True)
    yield serving
    serving.stop()


def invoke(container, body: bytes, content_type: str, accept: str = "") -> tuple[int, bytes, str]:
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    return container.request("POST", "/invocations", body, headers)


def csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(f"{v:.6g}" for v in row) for row in rows).encode()


def test_ping_answers_200_with_network_isolation(container):
    assert container.request("GET", "/ping")[0] == 200
    assert container.network_isolated or container.isolation_note


def test_the_code_directory_was_installed_by_pip_with_no_network(container):
    if not container.network_isolated:
        pytest.skip(f"network isolation unavailable here: {container.isolation_note}")
    log = container.log_tail(100_000)
    assert "Installing module with the following command" in log and "Successfully installed inference" in log


def test_csv_in_json_out(container):
    status, body, content_type = invoke(container, csv(ROWS), "text/csv")
    predictions = json.loads(body)["predictions"]
    assert status == 200 and content_type.startswith("application/json")
    assert [p["is_fraud"] for p in predictions] == [True, False, False]
    assert all((p["fraud_probability"] >= 0.5) == p["is_fraud"] for p in predictions)


def test_json_named_and_listed_in_csv_out(container):
    for document in ({"instances": [dict(zip(FEATURE_COLUMNS, ROWS[0]))]}, {"instances": ROWS[:1].tolist()}):
        status, body, content_type = invoke(container, json.dumps(document).encode(), "application/json", "text/csv")
        probability, decision = body.decode().strip().split(",")
        assert status == 200 and content_type.startswith("text/csv") and decision == "1" and float(probability) >= 0.5


def test_same_scores_as_the_serving_functions_in_this_venv(container, tmp_path, archive):
    """The image's xgboost, numpy and pandas score exactly as the kit's venv does."""
    from inference import inference

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    expected, _ = inference.handle(inference.model_fn(str(tmp_path)), csv(ROWS), "text/csv", "application/json")
    assert invoke(container, csv(ROWS), "text/csv", "application/json")[1] == expected


@pytest.mark.parametrize("case, body, content_type, accept, status, message", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_request_gets_its_4xx_and_the_endpoint_keeps_serving(container, case, body, content_type, accept, status, message):
    got, reply, reply_type = invoke(container, body, content_type, accept)
    assert (got, message in json.loads(reply).get("message", "")) == (status, True), reply[:300]
    assert reply_type.startswith("application/json")
    assert invoke(container, csv(ROWS[:1]), "text/csv")[0] == 200


def test_without_the_kit_s_pip_settings_the_install_needs_network_and_ping_never_answers(archive):
    """The cloud blocker this kit once had: pip 26.1's isolated build downloads setuptools."""
    if image_env.network_sandbox()[1]:
        pytest.skip(f"network isolation unavailable here: {image_env.network_sandbox()[1]}")
    environment = {k: v for k, v in TEST_MODEL_ENVIRONMENT.items() if not k.startswith("PIP_")}
    with pytest.raises(ContainerFailed, match="did not pass the ping health check") as failed:
        start_serving_container("no-pip-settings/AllTraffic", archive, environment, network_isolation=True).stop()
    assert "setuptools" in str(failed.value) or "InstallModuleError" in str(failed.value)


def test_where_unshare_is_not_permitted_the_container_still_serves_and_says_so(archive, monkeypatch):
    monkeypatch.setattr(image_env, "network_sandbox", lambda: ([], "`unshare --net` is not permitted here (test)"))
    serving = start_serving_container("no-unshare/AllTraffic", archive, TEST_MODEL_ENVIRONMENT, network_isolation=True)
    try:
        assert not serving.network_isolated and "not permitted" in serving.isolation_note
        assert "network isolation NOT applied offline" in serving.log_tail(100_000)
        assert invoke(serving, csv(ROWS[:1]), "text/csv")[0] == 200
    finally:
        serving.stop()


def test_missing_values_are_scored_through_the_real_stack(container):
    row = ["0.5"] * N
    row[3] = ""
    status, body, _ = invoke(container, ",".join(row).encode(), "text/csv")
    assert status == 200 and 0 <= json.loads(body)["predictions"][0]["fraud_probability"] <= 1
    status, _, _ = invoke(container, json.dumps({"instances": [[None] + [0.5] * (N - 1)]}).encode(), "application/json")
    assert status == 200
