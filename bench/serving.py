"""Serving figures on the image's real serving stack offline, and its floor.

The model is the lab's own (20k generated payments -> feature job -> built-in XGBoost
training -> serving artifact), served as an endpoint's container is offline
(runtime/container.py: script mode, gunicorn + gevent, the image environment). The load
comes from threads in this process over keep-alive connections to gunicorn's unix socket,
so client and server share the machine's 2 cores: the figures are a floor for the server.
The floor: an echo server on a unix socket, the same client, no model and no Flask.
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import socketserver
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab_scripts"))

from bench.pipeline import feature_job_command, landed_like_firehose, measured  # noqa: E402
from labkit.model_artifact import ENVIRONMENT, serving_artifact  # noqa: E402
from localaws.runtime.container import UnixHTTPConnection, start_serving_container  # noqa: E402
from localaws.sagemaker import builtin_xgboost  # noqa: E402
from localaws.sagemaker.jobs import _tar_gz  # noqa: E402

REQUESTS_PER_LEVEL = 3_000
CONCURRENCY = (1, 8, 32)
HOP_REQUESTS = 2_000
HOP_CONCURRENCY = (1, 8)
ARTICLE_AVG_MS, ARTICLE_PER_MINUTE = 23.0, 1_200  # the hands-on article, ml.m5.large


def lab_model(directory: Path) -> tuple[bytes, np.ndarray]:
    """Train the lab's model; returns (its serving artifact, test rows)."""
    for sub in ("raw", "labels"):
        (directory / sub).mkdir()
    landed_like_firehose(20_000, seed=11, directory=directory)
    measured(feature_job_command(directory))
    features = directory / "features"
    params = {"objective": "binary:logistic", "num_round": "100", "max_depth": "5", "eta": "0.1"}
    builtin_xgboost.train(params, {"train": features / "train"}, directory / "trained", None, lambda line: None)
    artifact = serving_artifact(_tar_gz(directory / "trained"), threshold=0.5)
    test = np.vstack([np.loadtxt(p, delimiter=",", ndmin=2) for p in sorted((features / "test").glob("*.csv"))])
    return artifact, test[:, 1:]


class Echo(BaseHTTPRequestHandler):
    """The floor: HTTP/1.1 keep-alive on a unix socket, no model."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class EchoServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def drive(new_sender, bodies: list[bytes], concurrency: int) -> tuple[list[float], float, int]:
    """Send every body once from `concurrency` threads, each with its own sender from
    `new_sender()` (body -> answered 200?); (latencies ms, seconds, errors)."""
    latencies: list[float] = []
    errors = [0]
    cursor = iter(range(len(bodies)))
    lock = threading.Lock()

    def worker() -> None:
        send = new_sender()
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            started = time.perf_counter()
            failed = not send(bodies[index])
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, errors[0]


def load(path: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], float, int]:
    """drive() over keep-alive connections to the unix socket at `path`."""

    def new_sender():
        connection = UnixHTTPConnection(path, timeout=30)

        def send(body: bytes) -> bool:
            try:
                connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv", "Accept": "application/json"})
                response = connection.getresponse()
                response.read()
                return response.status == 200
            except (OSError, http.client.HTTPException):  # counted, not a dead thread: a lost request is an error
                connection.close()
                return False

        return send

    return drive(new_sender, bodies, concurrency)


def measure(path: str, prefix: str, rows: np.ndarray, figures: dict[str, float]) -> None:
    singles = [",".join(f"{v:.6g}" for v in rows[i % len(rows)]).encode() for i in range(REQUESTS_PER_LEVEL)]
    load(path, singles[:200], 4)  # warm-up
    for concurrency in CONCURRENCY:
        latencies, seconds, errors = load(path, singles, concurrency)
        figures[f"{prefix}_single_c{concurrency}_p50_ms"] = float(np.percentile(latencies, 50))
        figures[f"{prefix}_single_c{concurrency}_p99_ms"] = float(np.percentile(latencies, 99))
        figures[f"{prefix}_single_c{concurrency}_requests_per_s"] = len(latencies) / seconds
        figures[f"{prefix}_single_c{concurrency}_errors"] = errors
    batch = "\n".join(",".join(f"{v:.6g}" for v in rows[i % len(rows)]) for i in range(500)).encode()
    latencies, seconds, errors = load(path, [batch] * 100, 1)
    figures[f"{prefix}_batch500_rows_per_s"] = 100 * 500 / seconds
    figures[f"{prefix}_batch500_errors"] = errors


def load_boto3(new_client, name: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], float, int]:
    """drive() through boto3's InvokeEndpoint (one client per thread, from `new_client`)."""

    def new_sender():
        runtime = new_client()

        def send(body: bytes) -> bool:
            try:
                runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/csv", Accept="application/json")["Body"].read()
                return True
            except Exception:  # noqa: BLE001 - counted: a lost request is an error, not a dead thread
                return False

        return send

    return drive(new_sender, bodies, concurrency)


# The local AWS in its own process, as in `make lab` (steps are processes of their own): it
# hosts one endpoint of the artifact, warms it, prints its URL and the container's socket,
# and serves until its stdin closes.
LOCAL_AWS = """
import json, sys
from pathlib import Path
from labkit.model_artifact import ENVIRONMENT
from localaws.server import LocalAws
artifact = Path(sys.argv[1]).read_bytes()
with LocalAws() as local:
    session = local.session()
    s3, sagemaker = session.client("s3"), session.client("sagemaker")
    s3.create_bucket(Bucket="bench")
    s3.put_object(Bucket="bench", Key="model.tar.gz", Body=artifact)
    sagemaker.create_model(ModelName="bench", ExecutionRoleArn="arn:aws:iam::123456789012:role/bench", EnableNetworkIsolation=True,
                           PrimaryContainer={"Image": "xgboost:3.2-0", "ModelDataUrl": "s3://bench/model.tar.gz", "Environment": ENVIRONMENT})
    sagemaker.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "bench", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    local.endpoints.ensure(local.region, "bench")
    socket_path = local.endpoints.hosted(local.region, "bench").container.socket_path
    print(json.dumps({"env": local.environment(), "socket": socket_path}), flush=True)
    sys.stdin.read()
"""


def invoke_endpoint_hop(artifact: bytes, rows: np.ndarray, scratch: Path) -> dict[str, float]:
    """boto3 InvokeEndpoint through the local AWS (its own process) against a direct call to
    the same serving container, alternating at each concurrency: what the hop costs."""
    import boto3

    figures: dict[str, float] = {}
    singles = [",".join(f"{v:.6g}" for v in rows[i % len(rows)]).encode() for i in range(HOP_REQUESTS)]
    (scratch / "hop-model.tar.gz").write_bytes(artifact)
    server = subprocess.Popen([sys.executable, "-c", LOCAL_AWS, str(scratch / "hop-model.tar.gz")], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lab_scripts'}"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(server.stdout.readline())
        env = started["env"]
        session = boto3.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
        client = lambda: session.client("sagemaker-runtime", endpoint_url=env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"])  # noqa: E731
        load_boto3(client, "bench", singles[:300], 4)  # warm both paths
        load(started["socket"], singles[:300], 4)
        for concurrency in HOP_CONCURRENCY:
            direct, _, direct_errors = load(started["socket"], singles, concurrency)
            hop, _, hop_errors = load_boto3(client, "bench", singles, concurrency)
            for label, latencies in (("direct", direct), ("boto3", hop)):
                figures[f"invoke_{label}_c{concurrency}_p50_ms"] = float(np.percentile(latencies, 50))
                figures[f"invoke_{label}_c{concurrency}_p99_ms"] = float(np.percentile(latencies, 99))
            figures[f"invoke_hop_c{concurrency}_p50_added_ms"] = figures[f"invoke_boto3_c{concurrency}_p50_ms"] - figures[f"invoke_direct_c{concurrency}_p50_ms"]
            figures[f"invoke_c{concurrency}_errors"] = direct_errors + hop_errors
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    return figures


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        artifact, rows = lab_model(Path(scratch))
        figures.update(invoke_endpoint_hop(artifact, rows, Path(scratch)))
        started = time.perf_counter()
        container = start_serving_container("bench/AllTraffic", artifact, ENVIRONMENT, network_isolation=True)
        figures["serving_container_start_s"] = time.perf_counter() - started
        try:
            measure(container.socket_path, "serving", rows, figures)
        finally:
            container.stop()
        echo = EchoServer(os.path.join(scratch, "echo.sock"), Echo)
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        try:
            measure(echo.server_address, "echo", rows, figures)
        finally:
            echo.shutdown()
    figures["serving_c1_p50_vs_article_avg_ratio"] = figures["serving_single_c1_p50_ms"] / ARTICLE_AVG_MS
    best = max(figures[f"serving_single_c{c}_requests_per_s"] for c in CONCURRENCY)
    figures["serving_best_per_minute_vs_article_ratio"] = best * 60 / ARTICLE_PER_MINUTE
    return figures
