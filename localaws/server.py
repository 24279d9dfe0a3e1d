"""The local AWS: moto's server app on a free loopback port, in a background thread.

boto3 reaches it through the standard AWS_ENDPOINT_URL variable, so lab scripts run
unchanged against it. In front of moto sits the SageMaker layer, which runs the jobs
moto only records (see sagemaker/protocol.py).
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import boto3
import requests
from moto.sagemaker.models import sagemaker_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from localaws import moto_fixes, tls
from localaws.clients import SharedClients
from localaws.cloudformation import resources as cloudformation_resources
from localaws.events import targets as event_targets
from localaws.cloudwatch.alarms import AlarmEvaluator
from localaws.faults import FaultLayer, Faults
from localaws.iam.authorizer import ADMIN_ACCESS_KEY, Authorizer, IamLayer, RoleCredentials, assume_as_service
from localaws.runtime.endpoints import EndpointHost
from localaws.sagemaker.deployments import DeploymentRunner
from localaws.sagemaker.jobs import JobRunner
from localaws.sagemaker.pipelines import PipelineRunner
from localaws.sagemaker.protocol import SageMakerLayer
from localaws.sagemaker.runtime_server import RuntimeServer

LOOPBACK = "127.0.0.1"
# moto's documented test account: no real person's account, same on every machine.
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
# A role session's credentials last an hour; a new one is taken with this much of it left.
ROLE_SESSION_REUSE_SECONDS = 600



class LocalAws:
    """A moto server on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(self, port: int = 0, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._tls_server: BaseWSGIServer | None = None
        self._tls_thread: threading.Thread | None = None
        self._tls_directory = Path(tempfile.mkdtemp(prefix="localaws-tls-"))
        self.ca_bundle: Path | None = None
        self._runtime: RuntimeServer | None = None
        # Containers without network isolation get this local AWS, as SageMaker gives them AWS.
        self._own_clients: dict[tuple[str, str, str], SharedClients] = {}
        self._own_lock = threading.Lock()
        self.jobs = JobRunner(self.own_clients, lambda role_arn: self.as_role(role_arn))
        self.endpoints = EndpointHost(
            self.own_clients, lambda role_arn, region: self.as_role(role_arn, region=region),
            exists=lambda region, name: name in sagemaker_backends[ACCOUNT_ID][region].endpoints,
        )
        self.pipelines = PipelineRunner(self.own_clients, self.jobs, lambda role_arn: self.as_role(role_arn))
        self.deployments = DeploymentRunner(self.endpoints, lambda role_arn, region: self.as_role(role_arn, region=region), ACCOUNT_ID)
        self.faults = Faults()  # none until a test (or `serve --firehose-failures`) sets one
        self.iam = Authorizer(ACCOUNT_ID)
        self.alarms = AlarmEvaluator(self.iam)
        self._role_bases: dict[str, boto3.Session] = {}
        self._role_base_lock = threading.RLock()  # botocore sessions make clients one at a time
        self._role_clients: dict[tuple[str, str, str, str, str | None], tuple[float, SharedClients, dict[str, str]]] = {}

    def start(self) -> "LocalAws":
        cloudformation_resources.register()
        moto_fixes.apply()
        event_targets.install(self._start_pipeline)
        app = IamLayer(FaultLayer(SageMakerLayer(DomainDispatcherApplication(create_backend_app), self.jobs, self.endpoints, ACCOUNT_ID, self.pipelines, self.deployments), self.faults), self.iam)
        # Threaded: a lab step may call back into the local AWS while a request is served.
        self._server = make_server(LOOPBACK, self._port, app, threaded=True, request_handler=tls.QuietRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="localaws", daemon=True)
        self._thread.start()
        context, self.ca_bundle = tls.server_context(self._tls_directory)
        self._tls_server = make_server(LOOPBACK, 0, app, threaded=True, request_handler=tls.KeepAliveRequestHandler, ssl_context=context)
        self._tls_thread = threading.Thread(target=self._tls_server.serve_forever, name="localaws-tls", daemon=True)
        self._tls_thread.start()
        self._runtime = RuntimeServer((LOOPBACK, 0), self.endpoints, ACCOUNT_ID).start()
        self.alarms.start()
        return self

    def stop(self) -> None:
        self.alarms.stop()
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None
        self.endpoints.stop_all()
        for server, thread in ((self._server, self._thread), (self._tls_server, self._tls_thread)):
            if server is not None:
                server.shutdown()
                server.server_close()
                thread.join()
        self._server = self._tls_server = None
        shutil.rmtree(self._tls_directory, ignore_errors=True)

    def __enter__(self) -> "LocalAws":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local AWS is not running: call start() first")
        return f"http://{LOOPBACK}:{self._server.server_port}"

    @property
    def tls_endpoint_url(self) -> str:
        """The same local AWS over TLS, where the roles' sessions call it."""
        if self._tls_server is None:
            raise RuntimeError("the local AWS is not running: call start() first")
        return f"https://{LOOPBACK}:{self._tls_server.server_port}"

    @property
    def runtime_url(self) -> str:
        if self._runtime is None:
            raise RuntimeError("the local AWS is not running: call start() first")
        return self._runtime.url

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (and the AWS CLI) at this local AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            # InvokeEndpoint's own host, as in AWS (sagemaker/runtime_server.py): boto3 and the
            # AWS CLI pick it up by this name.
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.runtime_url,
            # The account's administrator (the learner): the one key IAM does not evaluate.
            "AWS_ACCESS_KEY_ID": ADMIN_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": ADMIN_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def session(self, region: str | None = None) -> boto3.Session:
        """A boto3 session bound to this local AWS, whatever the process environment says."""
        return session_of(self.environment(), region)

    def own_clients(self, region: str | None = None) -> SharedClients:
        """The clients the local AWS calls itself with (capture flushes, jobs, pipeline steps,
        deployments), one per service and region, shared by its threads."""
        key = (region or self.region, self.endpoint_url, self.runtime_url)  # a restart may bring other ports
        with self._own_lock:
            if key not in self._own_clients:
                self._own_clients[key] = SharedClients(lambda: self.session(key[0]))
            return self._own_clients[key]

    def as_role(self, role_arn: str, service: str = "sagemaker.amazonaws.com", region: str | None = None,
                session_name: str = "SageMaker", source_arn: str | None = None) -> tuple[SharedClients, dict[str, str]]:
        """Clients and container environment with the credentials `service` gets for the role
        (sts:AssumeRole under its trust policy; RoleNotAssumable if the role refuses), reused
        while they have more than ROLE_SESSION_REUSE_SECONDS of their hour left."""
        region = region or self.region
        key = (role_arn, service, region, session_name, source_arn)
        with self._own_lock:
            cached = self._role_clients.get(key)
            if cached is not None and time.monotonic() < cached[0]:
                return cached[1], cached[2]
        credentials: RoleCredentials = assume_as_service(ACCOUNT_ID, region, role_arn, service, session_name, source_arn)
        environment = {**self.environment(), **credentials.environment(), "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                       "AWS_ENDPOINT_URL": self.tls_endpoint_url, "AWS_CA_BUNDLE": str(self.ca_bundle)}
        clients = SharedClients(lambda: _CredentialedSession(self._role_base(region), self._role_base_lock, environment))
        with self._own_lock:
            self._role_clients[key] = (time.monotonic() + 3600 - ROLE_SESSION_REUSE_SECONDS, clients, environment)
        return clients, environment

    def _role_base(self, region: str) -> boto3.Session:
        """One session per region whose loaded service models every role's clients share (a
        session of its own per role loaded them again, 70 ms for S3 or EC2 each)."""
        with self._role_base_lock:
            if region not in self._role_bases:
                self._role_bases[region] = session_of(self.environment(), region)
            return self._role_bases[region]

    def _start_pipeline(self, region: str, name: str, parameters: list[dict[str, str]], role_arn: str, rule_arn: str) -> None:
        """What EventBridge does for a rule's SageMaker pipeline target: StartPipelineExecution
        as the target's role, assumed as events.amazonaws.com for the rule. The target's ARN
        holds the name in lower case, as SageMaker writes pipeline ARNs; moto keys pipelines by name."""
        names = [p["PipelineName"] for p in self.own_clients(region).client("sagemaker").list_pipelines()["PipelineSummaries"]]
        role, _ = self.as_role(role_arn, service="events.amazonaws.com", region=region, session_name="EventBridge", source_arn=rule_arn)
        role.client("sagemaker").start_pipeline_execution(
            PipelineName=next((n for n in names if n.lower() == name.lower()), name), PipelineParameters=parameters)

    def reset(self) -> None:
        """Forget every resource (moto's reset API), e.g. between tests."""
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        with self._own_lock:
            self._role_clients.clear()  # their sessions went with STS


def session_of(environment: dict[str, str], region: str | None = None) -> boto3.Session:
    """A boto3 session bound to the local AWS that `environment` (LocalAws.environment, the
    .localaws/env that `make local-up` writes) points at, whatever the process environment says."""
    return _EndpointSession(
        environment["AWS_ENDPOINT_URL"],
        {"sagemaker-runtime": environment["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]},
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=region or environment["AWS_REGION"],
    )


class _CredentialedSession:
    """Clients of a shared session with a role's own credentials, endpoint and CA bundle."""

    def __init__(self, base: boto3.Session, lock: threading.RLock, environment: dict[str, str]) -> None:
        self._base, self._lock, self._environment = base, lock, environment

    def client(self, service_name: str):
        env = self._environment
        with self._lock:
            return self._base.client(
                service_name, endpoint_url=env["AWS_ENDPOINT_URL"], verify=env["AWS_CA_BUNDLE"], region_name=env["AWS_REGION"],
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=env["AWS_SESSION_TOKEN"])


class _EndpointSession(boto3.Session):
    """A session whose clients talk to the local AWS (boto3 has no session-wide option)."""

    def __init__(self, endpoint_url: str, service_urls: dict[str, str], **kwargs) -> None:
        super().__init__(**kwargs)
        self._endpoint_url, self._service_urls = endpoint_url, service_urls

    def client(self, service_name, *args, **kwargs):
        kwargs.setdefault("endpoint_url", self._service_urls.get(service_name, self._endpoint_url))
        return super().client(service_name, *args, **kwargs)
