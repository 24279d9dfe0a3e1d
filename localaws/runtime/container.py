"""A serving container, offline: the image's own `serve` in the image environment.

What SageMaker does when an endpoint's instance starts, done here on this machine:
model.tar.gz unpacked into the container's /opt/ml/model, the image's `serve` started with
the image's environment plus the Model's Environment (script mode installs the code
directory with pip, then gunicorn serves the real sagemaker-containers Transformer and
Worker; see glue/xgboost_serving.py), with no network at all when the Model asks for
network isolation, and GET /ping polled until it answers 200, as SageMaker's health check
does. Requests reach gunicorn over its unix socket, where the image's nginx would proxy.
"""
from __future__ import annotations

import http.client
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from localaws.runtime import image_env
from localaws.runtime.reaper import REAPER, kill_group

SERVE = "xgboost_serving"  # the image's `serve` console script (glue/xgboost_serving.py)
HEALTH_CHECK_TIMEOUT_SECONDS = 180.0
LOG_TAIL_CHARS = 600


class ContainerFailed(Exception):
    """The container exited or never answered /ping; str() says why, with its log's tail."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to gunicorn's unix socket (what nginx does in the image)."""

    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Connect blocking: with a timeout set, a unix socket whose backlog is full fails
        # at once with EAGAIN instead of waiting for gunicorn to accept.
        self.sock.connect(self.path)
        self.sock.settimeout(self.timeout)


@dataclass
class ServingContainer:
    name: str
    workdir: Path
    process: subprocess.Popen
    network_isolated: bool
    isolation_note: str | None  # why network isolation could not be applied, if asked for
    # Idle keep-alive connections to gunicorn, shared by all threads: the local AWS serves
    # each request on a new thread (werkzeug closes every connection), so a per-thread
    # connection would mean a new unix connection per request.
    idle: list[UnixHTTPConnection] = field(default_factory=list)
    idle_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def socket_path(self) -> str:
        """Where glue/xgboost_serving.py binds gunicorn: beside this container's /opt/ml."""
        return str(self.workdir / "opt" / "gunicorn.sock")

    @property
    def log_path(self) -> Path:
        return self.workdir / "container.log"

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip()[-chars:]
        except FileNotFoundError:
            return ""

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        """(status, body, content type); a keep-alive connection gunicorn closed is retried once
        on a new one."""
        for attempt in range(2):
            connection = self._checkout(fresh=attempt > 0)
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                reply = response.read()
            except (http.client.HTTPException, ConnectionError, FileNotFoundError):
                connection.close()
                if attempt:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
            else:
                with self.idle_lock:
                    self.idle.append(connection)
            return response.status, reply, response.getheader("Content-Type", "application/octet-stream")
        raise AssertionError("unreachable")

    def _checkout(self, fresh: bool) -> UnixHTTPConnection:
        with self.idle_lock:
            if self.idle and not fresh:
                return self.idle.pop()
        return UnixHTTPConnection(self.socket_path)

    def _close_idle(self) -> None:
        with self.idle_lock:
            idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()

    def wait_healthy(self, timeout: float = HEALTH_CHECK_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ContainerFailed(f"the container exited with code {self.process.returncode} before /ping answered: {self.log_tail()}")
            if os.path.exists(self.socket_path) and _ping(self.socket_path) == 200:
                return
            time.sleep(0.1)
        raise ContainerFailed(f"/ping did not answer 200 within {timeout:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the container's process group (entrypoint, gunicorn, workers), as
        `docker stop` would; SIGKILL what is left after 10 s."""
        self._close_idle()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass  # nothing of it left
        except subprocess.TimeoutExpired:
            pass
        kill_group(self.process.pid)  # whatever of the group is left
        self.process.wait()
        REAPER.release(self.process.pid)
        shutil.rmtree(self.workdir, ignore_errors=True)


def stop_containers(containers: list[ServingContainer]) -> None:
    """Stop several containers at once: each takes about a second to drain its workers
    (gunicorn's graceful stop), and a fleet's instances are terminated together."""
    if containers:
        with ThreadPoolExecutor(len(containers), thread_name_prefix="stop") as pool:
            list(pool.map(ServingContainer.stop, containers))


def _ping(path: str) -> int | None:
    connection = UnixHTTPConnection(path, timeout=2)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def start_serving_container(
    name: str,
    model_archive: bytes,
    environment: dict[str, str],
    network_isolation: bool,
    network_environment: dict[str, str] | None = None,
) -> ServingContainer:
    """Start the image's `serve` for model.tar.gz `model_archive`; returns once /ping says 200.

    `environment` is the Model's Environment; `network_environment` what a container with
    network access gets to reach AWS (the local AWS), ignored under network isolation."""
    # Short path: the unix socket's path must stay under 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="sm-"))
    opt_ml = workdir / "opt" / "ml"
    (opt_ml / "model").mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(model_archive), mode="r:gz") as tar:
        tar.extractall(opt_ml / "model", filter="data")
    python = image_env.writable_layer(workdir / "layer")
    prefix, isolation_note = image_env.network_sandbox() if network_isolation else ([], None)
    variables = {
        "PYTHONPATH": str(image_env.GLUE),  # the image has its serving package in site-packages
        "SAGEMAKER_SERVING_MODULE": f"{SERVE}:main",
        **({} if network_isolation else (network_environment or {})),
        **environment,
    }
    with open(workdir / "container.log", "wb") as log:
        if isolation_note:
            log.write(f"localaws: network isolation NOT applied offline: {isolation_note}\n".encode())
            log.flush()
        process = subprocess.Popen(
            [*prefix, str(python), "-m", SERVE],
            cwd=workdir, env=image_env.container_environment(variables, opt_ml),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    REAPER.watch(process.pid)
    container = ServingContainer(name, workdir, process, network_isolation and not isolation_note, isolation_note)
    try:
        container.wait_healthy()
    except ContainerFailed as error:
        container.stop()
        raise ContainerFailed(f"the primary container for {name} did not pass the ping health check: {error}") from None
    return container
