"""sagemaker-runtime's own endpoint: InvokeEndpoint replies as on the shared URL, over one
persistent connection per client (what makes the local AWS hop cheap)."""
from __future__ import annotations

import http.client
import json

import boto3
import pytest

from localaws.runtime.endpoints import EndpointError
from localaws.sagemaker.runtime_server import RuntimeServer

SIGNED_IN_EU = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/eu-west-1/sagemaker/aws4_request, SignedHeaders=host, Signature=x"


class Endpoints:
    """Stands in for EndpointHost: one endpoint, 'fraud', echoing what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def invoke(self, region, name, body, content_type, accept, target_variant=""):
        self.calls.append((region, name, body, content_type, accept, target_variant))
        if name != "fraud":
            raise EndpointError(f"Endpoint {name} of account 123456789012 not found.")
        if body == b"bad":
            return 400, b"row 1 has 1 values, expected 25", "text/plain", "AllTraffic"
        return 200, b'{"predictions": []}', "application/json", "AllTraffic"


@pytest.fixture
def runtime():
    server = RuntimeServer(("127.0.0.1", 0), Endpoints(), "123456789012").start()
    yield server
    server.stop()


def post(connection: http.client.HTTPConnection, path: str, body: bytes, **headers) -> tuple[int, dict, bytes]:
    connection.request("POST", path, body=body, headers={"Content-Type": "text/csv", **headers})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_one_connection_carries_every_invocation(runtime):
    connection = http.client.HTTPConnection(*runtime.server_address[:2], timeout=5)
    replies = [post(connection, "/endpoints/fraud/invocations", b"1,2,3", Authorization=SIGNED_IN_EU) for _ in range(3)]
    socket_used = connection.sock
    replies.append(post(connection, "/endpoints/fraud/invocations", b"4,5,6"))
    assert connection.sock is socket_used  # never reconnected: the server kept the connection open
    assert [status for status, _, _ in replies] == [200] * 4
    assert replies[0][1]["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert runtime.endpoints.calls[0] == ("eu-west-1", "fraud", b"1,2,3", "text/csv", "", "")
    assert runtime.endpoints.calls[-1][0] == "us-east-1"  # unsigned: the default region


def test_errors_are_shaped_as_sagemaker_runtime_shapes_them(runtime):
    connection = http.client.HTTPConnection(*runtime.server_address[:2], timeout=5)
    status, headers, body = post(connection, "/endpoints/gone/invocations", b"1")
    assert status == 400 and headers["x-amzn-ErrorType"] == "ValidationError" and "not found" in json.loads(body)["message"]
    status, headers, body = post(connection, "/endpoints/fraud/invocations", b"bad")
    assert status == 424 and headers["x-amzn-ErrorType"] == "ModelError"
    assert json.loads(body)["OriginalStatusCode"] == 400
    status, headers, body = post(connection, "/models/fraud/invoke", b"1")
    assert status == 404 and headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_a_body_without_length_is_refused_and_the_connection_closed(runtime):
    connection = http.client.HTTPConnection(*runtime.server_address[:2], timeout=5)
    connection.putrequest("POST", "/endpoints/fraud/invocations")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders(b"1\r\nx\r\n0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 411 and response.getheader("Connection") == "close"
    assert runtime.endpoints.calls == []


def test_boto3_finds_it_by_the_standard_variable(runtime, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: only the runtime may be used
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    client = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="eu-west-1").client("sagemaker-runtime")
    reply = client.invoke_endpoint(EndpointName="fraud", ContentType="text/csv", Body=b"1,2")
    assert json.loads(reply["Body"].read()) == {"predictions": []} and reply["InvokedProductionVariant"] == "AllTraffic"
    assert runtime.endpoints.calls[-1][:2] == ("eu-west-1", "fraud")
    client.invoke_endpoint(EndpointName="fraud", ContentType="text/csv", Body=b"1,2", TargetVariant="Challenger")
    assert runtime.endpoints.calls[-1][-1] == "Challenger"  # the TargetVariant header reaches the host
